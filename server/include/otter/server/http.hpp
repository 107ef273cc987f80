// otter-server — the HTTP types handlers see. Boost.Beast/Asio stay inside http_server.cpp; handlers work with
// these plain types and answer through a Responder (now or later, e.g. after probing a device).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "otter/common/error.hpp"

namespace otter::server::http {

struct Request {
  std::string method;                                        ///< "GET", "POST", ...
  std::string target;                                        ///< raw request target, e.g. "/api/v1/jobs?limit=10"
  std::string path;                                          ///< percent-decoded path, e.g. "/api/v1/jobs"
  std::map<std::string, std::string> query;                  ///< percent-decoded query parameters
  std::map<std::string, std::string> params;                 ///< route parameters, e.g. {"id": "7"}
  std::vector<std::pair<std::string, std::string>> headers;  ///< as received
  std::string body;                                          ///< for ordinary routes (bounded by max_body_bytes)
  std::string body_file;  ///< for upload routes: the body, spooled to this temp file
  std::string remote;     ///< peer "ip:port"

  /// Case-insensitive header lookup.
  [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// If set, the body instead of `body`, sent without a copy (a cached serialisation shared by many answers).
  std::shared_ptr<const std::string> shared_body;
  std::string content_type = "application/json";

  [[nodiscard]] const std::string& body_text() const { return shared_body ? *shared_body : body; }

  static Response json(int status, std::string body);
  /// {"error": {"code": N, "name": "...", "message": "..."}, "message": "..."} with the HTTP status of the code.
  static Response error(const Error& e);
  static Response error(int status, ErrorCode code, std::string message);
};

/// HTTP status for an otter error code (NOT_FOUND → 404, FORBIDDEN → 403, INVALID_ARGUMENT → 400, ...).
int status_for(ErrorCode code);

/// A server-sent-event stream opened by a handler. Thread-affine to the server's io thread.
class EventSink {
 public:
  virtual ~EventSink() = default;
  /// Queues one SSE message ("event: TYPE\ndata: DATA\nid: ID\n\n"). Returns false once the client is gone.
  virtual bool send(std::string_view type, std::string_view data, std::int64_t id) = 0;
  [[nodiscard]] virtual bool closed() const = 0;
  /// Called once when the client disconnects or the server stops.
  virtual void on_close(std::function<void()> fn) = 0;
};

/// How a handler answers: exactly one of reply() or stream(), once, now or later (on the server's io thread).
class Responder {
 public:
  using ReplyFn = std::function<void(Response)>;
  using StreamFn = std::function<std::shared_ptr<EventSink>()>;
  Responder(ReplyFn reply, StreamFn stream) : reply_(std::move(reply)), stream_(std::move(stream)) {}
  void reply(Response r) const { reply_(std::move(r)); }
  /// Switches the connection to text/event-stream and returns the sink.
  [[nodiscard]] std::shared_ptr<EventSink> stream() const { return stream_(); }

 private:
  ReplyFn reply_;
  StreamFn stream_;
};

using Handler = std::function<void(Request&, Responder)>;

enum class BodyMode { buffered, spooled };

/// Routes "METHOD /path/{param}/..." patterns. A trailing "{param...}" captures the rest of the path.
class Router {
 public:
  void add(std::string method, std::string pattern, Handler handler, BodyMode mode = BodyMode::buffered);
  struct Match {
    const Handler* handler = nullptr;
    BodyMode mode = BodyMode::buffered;
    std::map<std::string, std::string> params;
    bool path_known = false;  ///< the path exists for another method (→ 405)
  };
  [[nodiscard]] Match match(std::string_view method, std::string_view path) const;
  /// Methods registered for `path` (for an Allow header), in registration order, without duplicates.
  [[nodiscard]] std::vector<std::string> methods_for(std::string_view path) const;
  /// Every registered (method, pattern), in registration order (used to check the OpenAPI document).
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> routes() const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
    BodyMode mode;
  };
  std::vector<Route> routes_;
};

/// Percent-decoding; nullopt on malformed escapes or an encoded NUL.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space = false);
/// Splits "a=1&b=x%20y" into decoded pairs (a key without '=' maps to ""); nullopt on a malformed escape.
std::optional<std::map<std::string, std::string>> parse_query(std::string_view query);
/// Compares secrets in time independent of where they differ.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace otter::server::http
