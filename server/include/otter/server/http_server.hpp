// otter-server — the HTTP/1.1 server: Boost.Beast on one io_context with C++20 coroutines (all of it inside
// http_server.cpp; this header only forward-declares the io_context).
//
// Per request, before any body byte is read: target check (400), CORS preflight (204 / 403), routing (404 / 405 with
// Allow), origin policy (403 for a state-changing call from an origin that is neither listed nor the server's own),
// token (401), declared body size (413). Bodies are bounded (buffered routes: max_body_bytes in memory; spooled
// routes: max_upload_bytes into a temp file under spool_dir, removed after the response). Slow clients: the header
// must arrive within header_timeout of its first byte (or of the connection), a keep-alive connection may idle for
// keepalive_timeout between requests, and a body or a response may stall for at most body_timeout / write_timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "otter/common/error.hpp"
#include "otter/server/http.hpp"

namespace boost::asio {
class io_context;
}

namespace otter::server::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0 = ephemeral (see Server::port())
  std::size_t max_header_bytes = std::size_t{16} * 1024;
  std::uint64_t max_body_bytes = 1u << 20;
  std::uint64_t max_upload_bytes = 4ull << 30;
  std::string spool_dir;  ///< spooled request bodies (created if missing; stale "req-*" files are removed at start)
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds keepalive_timeout{60'000};
  std::chrono::milliseconds body_timeout{30'000};
  std::chrono::milliseconds write_timeout{30'000};
  std::chrono::milliseconds sse_keepalive{15'000};
  std::size_t max_connections = 1024;
  std::vector<std::string> cors_origins;  ///< exact origins allowed cross-origin
  std::string token;                      ///< non-empty: state-changing requests need "Authorization: Bearer TOKEN"
  bool loopback = true;  ///< listening on loopback: a same-origin request must also name a loopback Host
  /// Called after every response (status, seconds from the first header byte to the last response byte).
  std::function<void(int status, double seconds)> on_request;
};

class Server {
 public:
  /// Binds and starts accepting on `io` (the caller runs it). The router must outlive the server.
  static Result<std::unique_ptr<Server>> listen(boost::asio::io_context& io, ServerOptions options,
                                                const Router& router);
  ~Server();  // NOLINT(bugprone-exception-escape): see the definition
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  [[nodiscard]] std::uint16_t port() const;
  /// "http://HOST:PORT" with the bound port ("[v6]" bracketed).
  [[nodiscard]] std::string url() const;
  [[nodiscard]] std::size_t connections() const;
  /// Stops accepting, closes idle keep-alive connections and event streams, lets requests in progress finish (their
  /// connections then close) and calls `drained` (on the io thread) once no connection is left.
  void stop(std::function<void()> drained);

 private:
  struct Impl;
  explicit Server(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

/// Runs blocking work (hashing, copying uploads) off the io thread.
class WorkerPool {
 public:
  WorkerPool(boost::asio::io_context& io, unsigned threads);
  ~WorkerPool();  ///< waits for work in progress
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  /// `work` runs on a worker thread, then `then` on the io thread (not at all if the io_context stopped first).
  void run(std::function<void()> work, std::function<void()> then);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace otter::server::http
