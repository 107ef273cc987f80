#include "http_client.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <stdexcept>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "otter/test/bin.hpp"

namespace otter::test::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::optional<std::string> Reply::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return std::nullopt;
}

nlohmann::json Reply::json() const { return nlohmann::json::parse(body, nullptr, false); }

std::string Reply::message() const {
  const auto j = json();
  if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  return {};
}

std::string Reply::error_name() const {
  const auto j = json();
  if (j.is_object() && j.contains("error") && j["error"].is_object() && j["error"].contains("name"))
    return j["error"]["name"].get<std::string>();
  return {};
}

struct Client::Impl {
  Impl(std::string h, std::uint16_t p) : host(std::move(h)), port(p), stream(io) {}
  std::string host;
  std::uint16_t port;
  asio::io_context io;
  beast::tcp_stream stream;
  beast::flat_buffer buf;
  bool open = false;

  /// Runs the io_context until the started operation completed (its own timeout ends it).
  void run() {
    io.restart();
    io.run();
  }
  void close() {
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream.close();
    open = false;
    buf.clear();
  }
};

Client::Client(std::string host, std::uint16_t port) : impl_(std::make_unique<Impl>(std::move(host), port)) {}
Client::~Client() = default;

bool Client::connected() const {
  if (!impl_->open) return false;
  // A closed-by-peer socket is readable with 0 bytes pending.
  const int fd = const_cast<Impl&>(*impl_).stream.socket().native_handle();
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return true;
  char c = 0;
  return ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

Reply Client::request(const std::string& method, const std::string& target, const std::string& body,
                      const Headers& headers, std::chrono::milliseconds timeout) {
  auto& d = *impl_;
  Reply reply;
  if (d.open && !connected()) d.close();
  if (!d.open) {
    beast::error_code ec;
    d.stream.expires_after(timeout);
    d.stream.async_connect(tcp::endpoint(asio::ip::make_address(d.host), d.port),
                           [&](const beast::error_code& e) { ec = e; });
    d.run();
    if (ec) {
      reply.error = "connect: " + ec.message();
      return reply;
    }
    d.open = true;
    ++connects_;
  }
  bhttp::request<bhttp::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(bhttp::field::host, d.host + ":" + std::to_string(d.port));
  req.set(bhttp::field::user_agent, "otter-test");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") req.prepare_payload();
  beast::error_code ec;
  d.stream.expires_after(timeout);
  bhttp::async_write(d.stream, req, [&](const beast::error_code& e, std::size_t) { ec = e; });
  d.run();
  if (ec) {
    reply.error = "write: " + ec.message();
    d.close();
    return reply;
  }
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(boost::none);
  parser.skip(method == "HEAD");
  d.stream.expires_after(timeout);
  bhttp::async_read(d.stream, d.buf, parser, [&](const beast::error_code& e, std::size_t) { ec = e; });
  d.run();
  if (ec) {
    reply.error = "read: " + ec.message();
    d.close();
    return reply;
  }
  auto& res = parser.get();
  reply.status = static_cast<int>(res.result_int());
  for (const auto& f : res) reply.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  reply.body = std::move(res.body());
  reply.keep_alive = res.keep_alive();
  if (!reply.keep_alive) d.close();
  return reply;
}

Reply Client::post(const std::string& target, const nlohmann::json& body, const Headers& headers) {
  Headers h = headers;
  h.emplace_back("Content-Type", "application/json");
  return request("POST", target, body.dump(), h);
}

Reply Client::patch(const std::string& target, const nlohmann::json& body, const Headers& headers) {
  Headers h = headers;
  h.emplace_back("Content-Type", "application/json");
  return request("PATCH", target, body.dump(), h);
}

Reply Client::put(const std::string& target, const nlohmann::json& body, const Headers& headers) {
  Headers h = headers;
  h.emplace_back("Content-Type", "application/json");
  return request("PUT", target, body.dump(), h);
}

EventStream::EventStream(const std::string& host, std::uint16_t port, const std::string& target,
                         const Headers& headers)
    : tcp_(host, port) {
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(port) +
                    "\r\nAccept: text/event-stream\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  req += "\r\n";
  if (!tcp_.send_all(req)) throw std::runtime_error("event stream: send failed");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    const auto end = buf_.find("\r\n\r\n");
    if (end != std::string::npos) {
      header_ = buf_.substr(0, end + 4);
      buf_.erase(0, end + 4);
      break;
    }
    if (!read_more(deadline)) throw std::runtime_error("event stream: no response header; got: " + buf_);
  }
  if (header_.rfind("HTTP/1.1 200", 0) != 0) throw std::runtime_error("event stream: " + header_);
}

bool EventStream::read_more(std::chrono::steady_clock::time_point deadline) {
  if (eof_) return false;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return false;
    pollfd p{tcp_.fd(), POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return false;
    char chunk[16384];
    const ssize_t n = ::recv(tcp_.fd(), chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
}

std::optional<EventStream::Event> EventStream::next(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto end = buf_.find("\n\n");
    if (end != std::string::npos) {
      const std::string block = buf_.substr(0, end + 1);
      buf_.erase(0, end + 2);
      Event ev;
      std::size_t i = 0;
      while (i < block.size()) {
        const auto nl = block.find('\n', i);
        const std::string line = block.substr(i, nl - i);
        i = nl + 1;
        if (line.rfind(':', 0) == 0) {
          ev.comment = line.size() > 1 && line[1] == ' ' ? line.substr(2) : line.substr(1);
        } else if (line.rfind("event: ", 0) == 0) {
          ev.type = line.substr(7);
        } else if (line.rfind("data: ", 0) == 0) {
          ev.data += (ev.data.empty() ? "" : "\n") + line.substr(6);
        } else if (line.rfind("id: ", 0) == 0) {
          ev.id = line.substr(4);
        }
      }
      return ev;
    }
    if (!read_more(deadline)) return std::nullopt;
  }
}

std::optional<EventStream::Event> EventStream::next_matching(const std::function<bool(const Event&)>& pred,
                                                             std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto ev = next(left);
    if (!ev) return std::nullopt;
    if (pred(*ev)) return ev;
  }
}

bool EventStream::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!eof_) {
    if (!read_more(deadline) && !eof_) return false;
  }
  return true;
}

std::optional<std::pair<std::string, std::uint16_t>> parse_server_line(std::string_view line) {
  constexpr std::string_view kPrefix = "otter-server: listening on http://";
  if (line.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  line.remove_prefix(kPrefix.size());
  const auto colon = line.rfind(':');
  if (colon == std::string_view::npos || colon + 1 >= line.size()) return std::nullopt;
  std::string host(line.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  for (const char c : line.substr(colon + 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<unsigned>(c - '0');
    if (port > 65535) return std::nullopt;
  }
  return std::pair{host, static_cast<std::uint16_t>(port)};
}

ServerProcess::ServerProcess(std::vector<std::string> args, Process::Options options) {
  if (std::find(args.begin(), args.end(), "--listen") == args.end()) {
    args.insert(args.begin(), "127.0.0.1:0");
    args.insert(args.begin(), "--listen");
  }
  args.insert(args.begin(), bin_path("otter-server"));
  proc_ = std::make_unique<Process>(std::move(args), std::move(options));
  auto line = proc_->read_line_until([](const std::string& l) { return parse_server_line(l).has_value(); },
                                     std::chrono::seconds(30));
  if (!line) {
    proc_->wait(std::chrono::milliseconds(500));
    throw std::runtime_error("otter-server did not announce its address\n" + proc_->output());
  }
  auto hp = parse_server_line(*line);
  host_ = hp->first;
  port_ = hp->second;
  client_ = std::make_unique<Client>(host_, port_);
}

ServerProcess::~ServerProcess() = default;

std::optional<int> ServerProcess::stop(std::chrono::milliseconds timeout) {
  client_.reset();
  proc_->signal(SIGTERM);
  auto rc = proc_->wait(timeout);
  if (!rc) proc_->kill();
  return rc;
}

std::string multipart_body(const std::vector<FormPart>& parts, const std::string& boundary) {
  std::string out;
  for (const auto& p : parts) {
    out += "--" + boundary + "\r\n";
    out += "Content-Disposition: form-data; name=\"" + p.name + "\"";
    if (p.filename) out += "; filename=\"" + *p.filename + "\"";
    out += "\r\n";
    if (p.filename) out += "Content-Type: application/octet-stream\r\n";
    out += "\r\n" + p.content + "\r\n";
  }
  out += "--" + boundary + "--\r\n";
  return out;
}

}  // namespace otter::test::http
