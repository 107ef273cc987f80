// otter — a small synchronous HTTP/1.1 client for talking to otter-server (the `otter --server` commands and the
// tests). Boost.Beast underneath, kept out of this header. Every operation is bounded by a timeout; one kept-alive
// connection is reused and reopened when the server closed it. Plain http:// only (put TLS in front of the server
// with a reverse proxy).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "otter/common/error.hpp"

namespace otter::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Reply {
  int status = 0;  ///< 0: no answer (could not connect, connection closed or timed out); see `error`
  Headers headers;
  std::string body;
  bool keep_alive = false;
  std::string error;  ///< why there is no answer ("connect: Connection refused", "read: timed out")

  /// The first header of that name (case-insensitive).
  [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
};

/// "http://HOST[:PORT][/]" → host and port (default 80). INVALID_ARGUMENT for anything else (https, paths).
struct ServerUrl {
  std::string host;  ///< a DNS name or an IP literal (IPv6 without brackets)
  std::uint16_t port = 80;
};
Result<ServerUrl> parse_server_url(std::string_view url);

class Client {
 public:
  Client(std::string host, std::uint16_t port, std::string user_agent = "otter");
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// One request on the kept-alive connection. `body` is sent with a Content-Length when not empty (and always for
  /// POST, PUT and PATCH). Headers given override the defaults (Host, User-Agent).
  Reply request(const std::string& method, const std::string& target, const std::string& body = {},
                const Headers& headers = {}, std::chrono::milliseconds timeout = std::chrono::seconds(20));

  /// Sends the file at `path` as the body, streamed from disk. The timeout applies to each step (connect, sending,
  /// the answer), so large files are fine. A local file that cannot be opened gives status 0 and an `error`.
  Reply request_file(const std::string& method, const std::string& target, const std::string& path,
                     const Headers& headers = {}, std::chrono::milliseconds timeout = std::chrono::seconds(60));

  /// GET of a streamed response (text/event-stream): returns once the header is read with status != 200 (body read),
  /// or after the stream ended: the server closed it, `on_data` returned false, or nothing (not even a keep-alive)
  /// arrived for `idle_timeout`. The connection is not reused afterwards.
  Reply stream(const std::string& target, const Headers& headers,
               const std::function<bool(std::string_view)>& on_data, std::chrono::milliseconds idle_timeout);

  /// True while the current connection is open (false after the server closed it and before the next request).
  [[nodiscard]] bool connected() const;
  /// Connections opened so far (to check keep-alive reuse).
  [[nodiscard]] int connects() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A parser for text/event-stream: feed bytes, get whole events (comments are reported with type "" and `comment`).
class EventParser {
 public:
  struct Event {
    std::string type;  ///< "" for a comment line
    std::string data;
    std::string id;
    std::string comment;  ///< text of a ": ..." line
  };
  /// Appends bytes; complete events are then available from next().
  void feed(std::string_view bytes);
  std::optional<Event> next();

 private:
  std::string buf_;
};

}  // namespace otter::http
