// otter-server tests — a tiny synchronous HTTP/1.1 client (Boost.Beast, every operation bounded by a timeout), an
// event-stream reader, and the otter-server process with its "listening on" line parsed.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "otter/common/http_client.hpp"
#include "otter/test/process.hpp"
#include "otter/test/tcp.hpp"

namespace otter::test::http {

using Headers = otter::http::Headers;

/// otter::http::Reply with JSON helpers for assertions.
struct Reply : otter::http::Reply {
  /// The body as JSON (a discarded value if it is not JSON).
  [[nodiscard]] nlohmann::json json() const;
  /// The error body's top-level "message" ("" if absent).
  [[nodiscard]] std::string message() const;
  /// The error body's error.name ("" if absent).
  [[nodiscard]] std::string error_name() const;
};

/// otter::http::Client (the one the CLI uses) with JSON conveniences.
class Client {
 public:
  Client(std::string host, std::uint16_t port) : c_(std::move(host), port, "otter-test") {}

  Reply request(const std::string& method, const std::string& target, const std::string& body = {},
                const Headers& headers = {}, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    return Reply{c_.request(method, target, body, headers, timeout)};
  }
  Reply get(const std::string& target, const Headers& headers = {}) { return request("GET", target, {}, headers); }
  Reply del(const std::string& target, const Headers& headers = {}) { return request("DELETE", target, {}, headers); }
  Reply post(const std::string& target, const nlohmann::json& body, const Headers& headers = {});
  Reply patch(const std::string& target, const nlohmann::json& body, const Headers& headers = {});
  Reply put(const std::string& target, const nlohmann::json& body, const Headers& headers = {});
  /// True while the current connection is open (false after the server closed it and before the next request).
  [[nodiscard]] bool connected() const { return c_.connected(); }
  /// Connections opened so far (to check keep-alive reuse).
  [[nodiscard]] int connects() const { return c_.connects(); }

 private:
  otter::http::Client c_;
};

/// Reads a text/event-stream over a raw socket.
class EventStream {
 public:
  using Event = otter::http::EventParser::Event;
  /// Sends GET `target` and reads the response header (throws on failure or a non-200 answer).
  EventStream(const std::string& host, std::uint16_t port, const std::string& target = "/api/v1/events",
              const Headers& headers = {});
  [[nodiscard]] const std::string& response_header() const { return header_; }
  /// The next event or comment; nullopt on timeout or when the server closed the stream.
  std::optional<Event> next(std::chrono::milliseconds timeout);
  /// Skips events until one satisfies pred; nullopt if none within the timeout.
  std::optional<Event> next_matching(const std::function<bool(const Event&)>& pred,
                                     std::chrono::milliseconds timeout);
  /// True once the server closed the connection (reads until EOF, within the timeout).
  bool wait_closed(std::chrono::milliseconds timeout);

 private:
  bool read_more(std::chrono::steady_clock::time_point deadline);
  TcpClient tcp_;
  std::string header_;
  std::string buf_;  ///< bytes before the end of the response header
  otter::http::EventParser events_;
  bool eof_ = false;
};

/// otter-server as a child process on 127.0.0.1 with an ephemeral port.
class ServerProcess {
 public:
  /// argv after the binary; "--listen 127.0.0.1:0" is added unless --listen is given.
  explicit ServerProcess(std::vector<std::string> args, Process::Options options = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  [[nodiscard]] const std::string& host() const { return host_; }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string url() const { return "http://" + host_ + ":" + std::to_string(port_); }
  Client& client() { return *client_; }
  Process& process() { return *proc_; }
  /// SIGTERM, then wait: the exit code (nullopt if it did not exit in time; it is then killed).
  std::optional<int> stop(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  [[nodiscard]] std::string output() const { return proc_->output(); }

 private:
  std::unique_ptr<Process> proc_;
  std::string host_;
  std::uint16_t port_ = 0;
  std::unique_ptr<Client> client_;
};

/// "otter-server: listening on http://HOST:PORT" → (host, port).
std::optional<std::pair<std::string, std::uint16_t>> parse_server_line(std::string_view line);

/// Inflates a gzip member (throws std::runtime_error if it is not one).
std::string gunzip(std::string_view gz);

/// A multipart/form-data body: (field name, optional file name, content).
struct FormPart {
  std::string name;
  std::optional<std::string> filename;
  std::string content;
};
std::string multipart_body(const std::vector<FormPart>& parts, const std::string& boundary);

}  // namespace otter::test::http
