#include "http_client.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <stdexcept>

#include <zlib.h>

#include "otter/test/bin.hpp"

namespace otter::test::http {

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
    if (!buf_.empty()) {
      events_.feed(buf_);
      buf_.clear();
    }
    if (auto ev = events_.next()) return ev;
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

std::string gunzip(std::string_view gz) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) throw std::runtime_error("inflateInit2 failed");
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    char buf[16384];
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("not a complete gzip member");
  return out;
}

}  // namespace otter::test::http
