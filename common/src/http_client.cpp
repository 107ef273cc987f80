#include "otter/common/http_client.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include <fmt/format.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace otter::http {

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

template <class Message>
void fill_reply(Reply& reply, Message& res) {
  reply.status = static_cast<int>(res.result_int());
  for (const auto& f : res) reply.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  reply.keep_alive = res.keep_alive();
}

}  // namespace

std::optional<std::string> Reply::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return std::nullopt;
}

Result<ServerUrl> parse_server_url(std::string_view url) {
  const auto bad = [&](std::string_view why) {
    return make_error(ErrorCode::invalid_argument,
                      fmt::format("server URL '{}' {}: expected http://HOST[:PORT]", url, why));
  };
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    if (url.find("://") != std::string_view::npos) return bad("has an unsupported scheme");
    return bad("has no http:// scheme");
  }
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) return bad("has a path");
  ServerUrl out;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return bad("has an unclosed '['");
    out.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("has text after ']'");
      port = rest.substr(1);
    }
  } else {
    const auto colon = rest.find(':');
    out.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port = rest.substr(colon + 1);
  }
  if (out.host.empty()) return bad("has no host");
  if (!port.empty() || rest.find(':') != std::string_view::npos) {
    unsigned p = 0;
    const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || p == 0 || p > 65535)
      return bad("has a bad port");
    out.port = static_cast<std::uint16_t>(p);
  }
  return out;
}

struct Client::Impl {
  Impl(std::string h, std::uint16_t p, std::string ua)
      : host(std::move(h)), port(p), user_agent(std::move(ua)), stream(io) {}
  std::string host;
  std::uint16_t port;
  std::string user_agent;
  asio::io_context io;
  beast::tcp_stream stream;
  beast::flat_buffer buf;
  bool open = false;
  int connects = 0;

  /// Runs the io_context until the started operation completed (the stream's timer ends it at the latest).
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
  [[nodiscard]] bool peer_open() const {
    if (!open) return false;
    // A socket the peer closed is readable with nothing to peek.
    const int fd = const_cast<beast::tcp_stream&>(stream).socket().native_handle();
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return true;
    char c = 0;
    return ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
  }

  /// Opens the connection if needed; "" or why not.
  std::string ensure_open(std::chrono::milliseconds timeout) {
    if (open && !peer_open()) close();
    if (open) return {};
    beast::error_code ec;
    tcp::resolver::results_type endpoints;
    asio::ip::address literal = asio::ip::make_address(host, ec);
    if (!ec) {
      endpoints = tcp::resolver::results_type::create(tcp::endpoint(literal, port), host, std::to_string(port));
    } else {
      tcp::resolver resolver(io);
      endpoints = resolver.resolve(host, std::to_string(port), ec);
      if (ec) return fmt::format("resolve {}: {}", host, ec.message());
    }
    stream.expires_after(timeout);
    stream.async_connect(endpoints, [&](const beast::error_code& e, const tcp::endpoint&) { ec = e; });
    run();
    if (ec) return fmt::format("connect to {}:{}: {}", host, port, ec.message());
    open = true;
    ++connects;
    return {};
  }

  template <class Body>
  void prepare(bhttp::request<Body>& req, const std::string& method, const std::string& target,
               const Headers& headers) {
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(bhttp::field::host, host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                                                    : fmt::format("{}:{}", host, port));
    req.set(bhttp::field::user_agent, user_agent);
    for (const auto& [k, v] : headers) req.set(k, v);
  }

  template <class Body>
  Reply exchange(bhttp::request<Body>& req, bool head, std::chrono::milliseconds timeout) {
    Reply reply;
    beast::error_code ec;
    stream.expires_after(timeout);
    bhttp::async_write(stream, req, [&](const beast::error_code& e, std::size_t) { ec = e; });
    run();
    if (ec) {
      reply.error = "write: " + ec.message();
      close();
      return reply;
    }
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(boost::none);
    parser.skip(head);
    stream.expires_after(timeout);
    bhttp::async_read(stream, buf, parser, [&](const beast::error_code& e, std::size_t) { ec = e; });
    run();
    if (ec) {
      reply.error = "read: " + ec.message();
      close();
      return reply;
    }
    auto& res = parser.get();
    fill_reply(reply, res);
    reply.body = std::move(res.body());
    if (!reply.keep_alive) close();
    return reply;
  }
};

Client::Client(std::string host, std::uint16_t port, std::string user_agent)
    : impl_(std::make_unique<Impl>(std::move(host), port, std::move(user_agent))) {}
Client::~Client() = default;

bool Client::connected() const { return impl_->peer_open(); }
int Client::connects() const { return impl_->connects; }

Reply Client::request(const std::string& method, const std::string& target, const std::string& body,
                      const Headers& headers, std::chrono::milliseconds timeout) {
  auto& d = *impl_;
  Reply reply;
  if (reply.error = d.ensure_open(timeout); !reply.error.empty()) return reply;
  bhttp::request<bhttp::string_body> req;
  d.prepare(req, method, target, headers);
  req.body() = body;
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") req.prepare_payload();
  return d.exchange(req, method == "HEAD", timeout);
}

Reply Client::request_file(const std::string& method, const std::string& target, const std::string& path,
                           const Headers& headers, std::chrono::milliseconds timeout) {
  auto& d = *impl_;
  Reply reply;
  bhttp::request<bhttp::file_body> req;
  beast::error_code ec;
  req.body().open(path.c_str(), beast::file_mode::scan, ec);
  if (ec) {
    reply.error = fmt::format("open {}: {}", path, ec.message());
    return reply;
  }
  if (reply.error = d.ensure_open(timeout); !reply.error.empty()) return reply;
  d.prepare(req, method, target, headers);
  req.prepare_payload();
  return d.exchange(req, false, timeout);
}

Reply Client::stream(const std::string& target, const Headers& headers,
                     const std::function<bool(std::string_view)>& on_data, std::chrono::milliseconds idle_timeout) {
  auto& d = *impl_;
  Reply reply;
  if (reply.error = d.ensure_open(idle_timeout); !reply.error.empty()) return reply;
  bhttp::request<bhttp::empty_body> req;
  d.prepare(req, "GET", target, headers);
  req.set(bhttp::field::accept, "text/event-stream");
  beast::error_code ec;
  d.stream.expires_after(idle_timeout);
  bhttp::async_write(d.stream, req, [&](const beast::error_code& e, std::size_t) { ec = e; });
  d.run();
  if (ec) {
    reply.error = "write: " + ec.message();
    d.close();
    return reply;
  }
  bhttp::response_parser<bhttp::buffer_body> parser;
  parser.body_limit(boost::none);
  d.stream.expires_after(idle_timeout);
  bhttp::async_read_header(d.stream, d.buf, parser, [&](const beast::error_code& e, std::size_t) { ec = e; });
  d.run();
  if (ec) {
    reply.error = "read: " + ec.message();
    d.close();
    return reply;
  }
  fill_reply(reply, parser.get());
  std::array<char, 16384> chunk{};
  bool more = true;
  while (more && !parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    d.stream.expires_after(idle_timeout);
    bhttp::async_read_some(d.stream, d.buf, parser, [&](const beast::error_code& e, std::size_t) { ec = e; });
    d.run();
    if (ec && ec != bhttp::error::need_buffer) {
      if (ec != bhttp::error::end_of_stream && ec != asio::error::eof && ec != beast::error::timeout)
        reply.error = "read: " + ec.message();
      if (ec == beast::error::timeout) reply.error = "read: timed out";
      break;
    }
    const std::size_t n = chunk.size() - parser.get().body().size;
    if (n == 0) continue;
    if (reply.status == 200) {
      more = on_data(std::string_view(chunk.data(), n));
    } else {
      reply.body.append(chunk.data(), n);
    }
  }
  d.close();
  return reply;
}

void EventParser::feed(std::string_view bytes) { buf_.append(bytes); }

std::optional<EventParser::Event> EventParser::next() {
  // Lines may end in "\n" or "\r\n"; an empty line ends an event.
  for (;;) {
    std::size_t end = buf_.find("\n\n");
    std::size_t sep = 2;
    if (const auto crlf = buf_.find("\r\n\r\n"); crlf != std::string::npos && crlf < end) {
      end = crlf;
      sep = 4;
    }
    if (end == std::string::npos) return std::nullopt;
    std::string block = buf_.substr(0, end);
    buf_.erase(0, end + sep);
    Event ev;
    std::size_t i = 0;
    bool any = false;
    while (i <= block.size()) {
      auto nl = block.find('\n', i);
      if (nl == std::string::npos) nl = block.size();
      std::string line = block.substr(i, nl - i);
      i = nl + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      any = true;
      const auto colon = line.find(':');
      const std::string field = line.substr(0, colon);
      std::string value = colon == std::string::npos ? std::string() : line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.erase(0, 1);
      if (field.empty()) {
        ev.comment = value;
      } else if (field == "event") {
        ev.type = value;
      } else if (field == "data") {
        ev.data += (ev.data.empty() ? "" : "\n") + value;
      } else if (field == "id") {
        ev.id = value;
      }
    }
    if (any) return ev;
  }
}

}  // namespace otter::http
