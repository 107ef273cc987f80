// otter-server — the HTTP/1.1 server on Boost.Beast + C++20 coroutines (see http_server.hpp for the policy).
#include "otter/server/http_server.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <exception>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace otter::server::http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxSsePending = 4u << 20;  // a client this far behind is dropped
constexpr std::size_t kLingerBytes = 1u << 20;    // unread request bytes drained before closing
constexpr std::chrono::milliseconds kLingerTime{1000};
constexpr std::string_view kAllowedMethods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
constexpr std::string_view kAllowedHeaders = "Content-Type, Authorization";

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string endpoint_text(const tcp::endpoint& ep) {
  const auto a = ep.address();
  return a.is_v6() ? fmt::format("[{}]:{}", a.to_string(), ep.port())
                   : fmt::format("{}:{}", a.to_string(), ep.port());
}

bool is_state_changing(std::string_view method) { return method != "GET" && method != "HEAD" && method != "OPTIONS"; }

/// The host part of a Host header ("[::1]:8080" → "::1", "localhost:80" → "localhost").
std::string host_of(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    return close == std::string_view::npos ? std::string() : std::string(host.substr(1, close - 1));
  }
  return std::string(host.substr(0, host.rfind(':')));
}

bool is_loopback_name(const std::string& host) {
  const auto h = lower(host);
  if (h == "localhost" || h == "::1") return true;
  boost::system::error_code ec;
  const auto a = asio::ip::make_address_v4(h, ec);
  return !ec && (a.to_uint() >> 24) == 127;
}

/// "GET, HEAD, POST": the registered methods, HEAD right after GET (HEAD is served by GET routes).
std::string allow_header(const std::vector<std::string>& methods) {
  std::string out;
  for (const auto& m : methods) {
    out += (out.empty() ? "" : ", ") + m;
    if (m == "GET") out += ", HEAD";
  }
  return out;
}

/// A log-safe rendering of client-supplied text (bounded, control characters escaped).
std::string printable(std::string_view s, std::size_t max = 200) {
  std::string out;
  for (const char ch : s.substr(0, max)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out.push_back(ch);
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

/// The server side of an event stream: queued text and the wake-up timer of the writer loop.
class SseSink final : public EventSink {
 public:
  explicit SseSink(const asio::any_io_executor& ex) : wake_(ex) {}

  bool send(std::string_view type, std::string_view data, std::int64_t id) override {
    if (closed_) return false;
    if (!type.empty()) pending_ += fmt::format("event: {}\n", type);
    std::size_t start = 0;
    for (;;) {  // one "data:" line per line of data
      const auto nl = data.find('\n', start);
      pending_ += fmt::format("data: {}\n", data.substr(start, nl == std::string_view::npos ? nl : nl - start));
      if (nl == std::string_view::npos) break;
      start = nl + 1;
    }
    if (id > 0) pending_ += fmt::format("id: {}\n", id);
    pending_ += '\n';
    if (pending_.size() > kMaxSsePending) {
      spdlog::warn("event stream dropped: the client is {} bytes behind", pending_.size());
      close();
      return false;
    }
    wake_.cancel();
    return true;
  }
  [[nodiscard]] bool closed() const override { return closed_; }
  void on_close(std::function<void()> fn) override {
    if (finished_) {
      fn();
      return;
    }
    callbacks_.push_back(std::move(fn));
  }

  void close() {
    closed_ = true;
    wake_.cancel();
  }
  /// Called once by the writer loop when the stream ends.
  void finish() {
    closed_ = true;
    finished_ = true;
    auto callbacks = std::move(callbacks_);
    callbacks_.clear();
    for (auto& fn : callbacks) fn();
  }
  std::string take() { return std::exchange(pending_, std::string()); }
  [[nodiscard]] bool has_pending() const { return !pending_.empty(); }
  asio::steady_timer& wake() { return wake_; }

 private:
  asio::steady_timer wake_;
  std::string pending_;
  bool closed_ = false;
  bool finished_ = false;
  std::vector<std::function<void()>> callbacks_;
};

struct Conn {
  explicit Conn(tcp::socket s) : stream(std::move(s)) {}
  beast::tcp_stream stream;
  std::string remote;
  bool idle = true;  // no request in progress (waiting for one, or for its header): closed at once on stop
  std::shared_ptr<SseSink> sink;

  void close() {
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream.close();
  }
};

/// Where a handler's answer lands; the session waits on `timer` until `done`.
struct ReplyState {
  explicit ReplyState(asio::any_io_executor ex) : executor(std::move(ex)) {}
  asio::any_io_executor executor;
  /// Made only if the handler answers later (most answer before they return: no timer for them).
  std::optional<asio::steady_timer> timer;
  bool done = false;
  std::optional<Response> response;
  std::shared_ptr<SseSink> sink;

  void finish() {
    done = true;
    if (timer) timer->cancel();
  }
};

/// Shared by the copies of one Responder: if the last copy goes away unanswered, the client gets a 500.
struct ReplyGuard {
  explicit ReplyGuard(std::shared_ptr<ReplyState> s) : state(std::move(s)) {}
  ReplyGuard(const ReplyGuard&) = delete;
  ReplyGuard& operator=(const ReplyGuard&) = delete;
  // Only std::bad_alloc can escape (building the 500); terminating then is accepted.
  ~ReplyGuard() {  // NOLINT(bugprone-exception-escape)
    if (state->done) return;
    state->response = Response::error(500, ErrorCode::internal, "the request handler did not answer");
    state->finish();
  }
  std::shared_ptr<ReplyState> state;
};

/// Removes a spooled body when the request is over.
struct SpoolFile {
  std::string path;
  SpoolFile() = default;
  SpoolFile(const SpoolFile&) = delete;
  SpoolFile& operator=(const SpoolFile&) = delete;
  ~SpoolFile() { remove(); }
  void remove() {
    if (!path.empty()) ::unlink(path.c_str());
    path.clear();
  }
};

/// What the response writer needs to know about the request.
struct Exchange {
  std::string method;
  std::string target;
  std::string remote;
  std::string allow_origin;  // non-empty: echo in Access-Control-Allow-Origin
  bool head = false;
  bool keep_alive = true;
  Clock::time_point start;
};

bool is_disconnect(const beast::error_code& ec) {
  return ec == beast::error::timeout || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::operation_aborted || ec == asio::error::broken_pipe ||
         ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
         ec == asio::error::bad_descriptor;
}

void log_exception(std::string_view what, const std::exception_ptr& e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("{}: {}", what, ex.what());
  } catch (...) {
    spdlog::error("{}: unknown exception", what);
  }
}

/// What an answer's head (status line and header fields) is made of.
struct HeadSpec {
  int status = 200;
  std::string_view content_type;  // empty: none
  const std::vector<std::pair<std::string, std::string>>* headers = nullptr;
  std::string_view allow_origin;  // empty: none
  bool vary_origin = false;
  bool keep_alive = true;
  std::optional<std::size_t> content_length;  // none on 1xx / 204 / 304
};

/// The heads of recent answers, serialised by Beast and reused byte for byte by the next answer with the same status,
/// fields and length: a console or dashboard polling one cached list gets the same head every time, so it is built
/// once instead of once per request (Beast's fields and serializer were ~12% of the server's CPU under wrk).
class HeadCache {
 public:
  std::shared_ptr<const std::string> get(const HeadSpec& h) {
    key_.clear();
    auto out = std::back_inserter(key_);
    fmt::format_to(out, "{}\n{}\n{}\n{}{}{}", h.status, h.content_type, h.allow_origin, h.vary_origin ? 'v' : '-',
                   h.keep_alive ? 'k' : '-', h.content_length ? std::to_string(*h.content_length) : "-");
    for (const auto& [k, v] : *h.headers) fmt::format_to(out, "\n{}\n{}", k, v);
    const std::string_view key(key_.data(), key_.size());
    for (const auto& e : entries_) {
      if (e.head && e.key == key) return e.head;
    }
    Entry& e = entries_[next_];
    next_ = (next_ + 1) % entries_.size();
    e.key.assign(key);
    e.head = std::make_shared<const std::string>(serialise(h));
    return e.head;
  }

 private:
  static std::string serialise(const HeadSpec& h) {
    bhttp::response<bhttp::empty_body> res{static_cast<bhttp::status>(h.status), 11};
    res.set(bhttp::field::server, "otter-server");
    if (!h.content_type.empty()) res.set(bhttp::field::content_type, h.content_type);
    res.set("X-Content-Type-Options", "nosniff");
    for (const auto& [k, v] : *h.headers) res.insert(k, v);
    if (!h.allow_origin.empty()) res.set(bhttp::field::access_control_allow_origin, h.allow_origin);
    if (h.vary_origin) res.insert(bhttp::field::vary, "Origin");
    res.keep_alive(h.keep_alive);
    if (h.content_length) res.content_length(*h.content_length);
    bhttp::response_serializer<bhttp::empty_body> sr{res};
    sr.split(true);
    std::string text;
    beast::error_code ec;
    while (!ec && !sr.is_header_done()) {
      sr.next(ec, [&](beast::error_code&, const auto& buffers) {
        const std::size_t n = beast::buffer_bytes(buffers);
        const std::size_t at = text.size();
        text.resize(at + n);
        asio::buffer_copy(asio::buffer(text.data() + at, n), buffers);
        sr.consume(n);
      });
    }
    return text;
  }

  struct Entry {
    std::string key;
    std::shared_ptr<const std::string> head;
  };
  fmt::memory_buffer key_;
  std::array<Entry, 8> entries_;
  std::size_t next_ = 0;
};

}  // namespace

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  Impl(asio::io_context& io_ctx, ServerOptions o, const Router& r)
      : io(io_ctx), opt(std::move(o)), router(r), acceptor(io_ctx) {}

  asio::io_context& io;
  ServerOptions opt;
  const Router& router;
  tcp::acceptor acceptor;
  std::uint16_t bound_port = 0;
  std::string bound_host;
  bool stopping = false;
  std::function<void()> drained;
  std::map<std::uint64_t, std::weak_ptr<Conn>> conns;
  std::uint64_t next_conn = 1;
  std::mt19937_64 rng{std::random_device{}()};
  HeadCache heads;

  asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self);
  asio::awaitable<void> session(std::shared_ptr<Impl> self, std::shared_ptr<Conn> c, std::uint64_t id);
  asio::awaitable<bool> serve_one(const std::shared_ptr<Conn>& c, beast::flat_buffer& buf,
                                  Clock::time_point header_deadline);
  asio::awaitable<bool> respond(const std::shared_ptr<Conn>& c, Exchange& ex, Response r);
  asio::awaitable<void> linger(const std::shared_ptr<Conn>& c);
  asio::awaitable<void> run_stream(const std::shared_ptr<Conn>& c, Exchange& ex, std::shared_ptr<SseSink> sink);
  void stop(std::function<void()> on_drained);
  void maybe_drained();
  std::string spool_path();
  void finished(const Exchange& ex, int status);
};

void Server::Impl::finished(const Exchange& ex, int status) {
  const double seconds = std::chrono::duration<double>(Clock::now() - ex.start).count();
  const auto q = ex.target.find('?');
  if (spdlog::should_log(spdlog::level::info))
    spdlog::info("http method={} path={} status={} duration_ms={:.2f} remote={}", printable(ex.method, 16),
                 printable(std::string_view(ex.target).substr(0, q)), status, seconds * 1000.0, ex.remote);
  if (opt.on_request) opt.on_request(status, seconds);
}

std::string Server::Impl::spool_path() { return fmt::format("{}/req-{:016x}", opt.spool_dir, rng()); }

void Server::Impl::maybe_drained() {
  if (stopping && conns.empty() && drained) asio::post(io, std::exchange(drained, {}));
}

void Server::Impl::stop(std::function<void()> on_drained) {
  drained = std::move(on_drained);
  if (!stopping) {
    stopping = true;
    beast::error_code ec;
    acceptor.close(ec);
    for (auto& [id, weak] : conns) {
      auto c = weak.lock();
      if (!c) continue;
      if (c->sink) {
        c->sink->close();
      } else if (c->idle) {
        c->close();
      }
    }
  }
  maybe_drained();
}

asio::awaitable<void> Server::Impl::accept_loop(std::shared_ptr<Impl> self) {
  while (!stopping) {
    auto [ec, sock] = co_await acceptor.async_accept(kTuple);
    if (stopping) break;
    if (ec) {
      if (ec == asio::error::operation_aborted) break;
      spdlog::warn("accept: {}", ec.message());
      // Out of descriptors and the like: back off briefly instead of spinning.
      asio::steady_timer t(io, std::chrono::milliseconds(50));
      co_await t.async_wait(kTuple);
      continue;
    }
    if (conns.size() >= opt.max_connections) {
      spdlog::warn("connection refused: {} connections open", conns.size());
      beast::error_code ignored;
      sock.close(ignored);
      continue;
    }
    // Answers go out in whole writes; Nagle would only hold back the small ones (SSE events) for an ACK.
    beast::error_code nodelay_ignored;
    sock.set_option(tcp::no_delay(true), nodelay_ignored);
    auto c = std::make_shared<Conn>(std::move(sock));
    beast::error_code rec;
    const auto ep = c->stream.socket().remote_endpoint(rec);
    c->remote = rec ? std::string("?") : endpoint_text(ep);
    const auto id = next_conn++;
    conns.emplace(id, c);
    asio::co_spawn(io, session(self, c, id), [](const std::exception_ptr& e) { log_exception("http session", e); });
  }
}

asio::awaitable<void> Server::Impl::session(std::shared_ptr<Impl> self, std::shared_ptr<Conn> c, std::uint64_t id) {
  try {
    beast::flat_buffer buf;
    bool first = true;
    const auto accepted = Clock::now();
    while (!(stopping && !first)) {
      c->idle = true;
      if (buf.size() == 0) {
        c->stream.expires_after(first ? opt.header_timeout : opt.keepalive_timeout);
        auto [ec, n] = co_await c->stream.async_read_some(buf.prepare(4096), kTuple);
        if (ec) break;
        buf.commit(n);
      }
      const auto deadline = first ? accepted + opt.header_timeout : Clock::now() + opt.header_timeout;
      first = false;
      if (!co_await serve_one(c, buf, deadline)) break;
    }
  } catch (const std::exception& e) {
    spdlog::error("http session {}: {}", c->remote, e.what());
  }
  c->close();
  conns.erase(id);
  maybe_drained();
  (void)self;
}

asio::awaitable<void> Server::Impl::linger(const std::shared_ptr<Conn>& c) {
  // Half-close, then drain what the client is still sending so that it reads our answer instead of a reset.
  beast::error_code ec;
  c->stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  c->stream.expires_after(kLingerTime);
  std::array<char, 16384> scratch{};
  std::size_t drained_bytes = 0;
  while (drained_bytes < kLingerBytes) {
    auto [rec, n] = co_await c->stream.async_read_some(asio::buffer(scratch), kTuple);
    if (rec) break;
    drained_bytes += n;
  }
}

asio::awaitable<bool> Server::Impl::respond(const std::shared_ptr<Conn>& c, Exchange& ex, Response r) {
  const bool no_body = r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
  const bool keep = ex.keep_alive && !stopping;
  const std::string& body = r.body_text();
  HeadSpec spec;
  spec.status = r.status;
  if (!no_body) spec.content_type = r.content_type;
  spec.headers = &r.headers;
  spec.allow_origin = ex.allow_origin;
  spec.vary_origin = !opt.cors_origins.empty();
  spec.keep_alive = keep;
  if (!no_body) spec.content_length = body.size();  // no Content-Length on 1xx / 204 / 304
  const auto head = heads.get(spec);
  // The body goes out from the Response (or the cache it shares) without another copy, in the same write.
  const std::size_t body_bytes = no_body || ex.head ? 0 : body.size();
  const std::array<asio::const_buffer, 2> wire{asio::buffer(*head), asio::buffer(body.data(), body_bytes)};
  c->stream.expires_after(opt.write_timeout);
  auto [ec, n] = co_await asio::async_write(c->stream, wire, kTuple);
  finished(ex, r.status);
  if (ec) co_return false;
  if (!keep) co_await linger(c);
  co_return keep;
}

asio::awaitable<void> Server::Impl::run_stream(const std::shared_ptr<Conn>& c, Exchange& ex,
                                               std::shared_ptr<SseSink> sink) {
  c->sink = sink;
  if (stopping) sink->close();
  static const std::vector<std::pair<std::string, std::string>> kStreamHeaders = {{"Cache-Control", "no-cache"},
                                                                                  {"X-Accel-Buffering", "no"}};
  HeadSpec spec;
  spec.content_type = "text/event-stream";
  spec.headers = &kStreamHeaders;
  spec.allow_origin = ex.allow_origin;
  spec.vary_origin = !opt.cors_origins.empty();
  spec.keep_alive = false;  // the stream ends with the connection; no Content-Length
  const auto head = heads.get(spec);
  c->stream.expires_after(opt.write_timeout);
  auto [hec, hn] = co_await asio::async_write(c->stream, asio::buffer(*head), kTuple);
  finished(ex, 200);
  if (!hec) {
    // Disconnect detection: a read on the raw socket (outside the stream's timer) ends when the client goes away.
    asio::co_spawn(
        c->stream.get_executor(),
        [c, sink]() -> asio::awaitable<void> {
          std::array<char, 512> scratch{};
          for (;;) {
            auto [ec, n] = co_await c->stream.socket().async_read_some(asio::buffer(scratch), kTuple);
            if (ec) break;
          }
          sink->close();
        },
        [](const std::exception_ptr& e) { log_exception("event stream reader", e); });
    std::string out = ": connected\n\n";
    auto next_keepalive = Clock::now() + opt.sse_keepalive;
    for (;;) {
      if (out.empty() && sink->has_pending()) out = sink->take();
      if (out.empty() && Clock::now() >= next_keepalive) out = ": keepalive\n\n";
      if (sink->closed()) break;
      if (!out.empty()) {
        c->stream.expires_after(opt.write_timeout);
        auto [ec, n] = co_await asio::async_write(c->stream, asio::buffer(out), kTuple);
        if (ec) break;
        out.clear();
        next_keepalive = Clock::now() + opt.sse_keepalive;
        continue;
      }
      sink->wake().expires_at(next_keepalive);
      co_await sink->wake().async_wait(kTuple);
    }
  }
  spdlog::info("http event stream closed remote={} duration_s={:.1f}", ex.remote,
               std::chrono::duration<double>(Clock::now() - ex.start).count());
  c->sink.reset();
  sink->finish();
}

asio::awaitable<bool> Server::Impl::serve_one(const std::shared_ptr<Conn>& c, beast::flat_buffer& buf,
                                              Clock::time_point header_deadline) {
  Exchange ex;
  ex.start = Clock::now();
  ex.remote = c->remote;
  auto hp = std::make_unique<bhttp::request_parser<bhttp::empty_body>>();
  hp->header_limit(static_cast<std::uint32_t>(opt.max_header_bytes));
  hp->body_limit(boost::none);  // checked below, per route
  c->stream.expires_at(header_deadline);
  {
    auto [ec, n] = co_await bhttp::async_read_header(c->stream, buf, *hp, kTuple);
    if (ec) {
      ex.keep_alive = false;
      ex.method = "-";
      ex.target = "-";
      if (ec == bhttp::error::header_limit) {
        co_await respond(c, ex,
                         Response::error(431, ErrorCode::payload_too_large,
                                         fmt::format("request header over {} bytes", opt.max_header_bytes)));
      } else if (ec == beast::error::timeout) {
        spdlog::info("http connection closed: no complete request header within {} ms remote={}",
                     opt.header_timeout.count(), c->remote);
      } else if (!is_disconnect(ec)) {
        co_await respond(
            c, ex, Response::error(400, ErrorCode::invalid_argument, "malformed HTTP request: " + ec.message()));
      }
      co_return false;
    }
  }

  c->idle = false;  // a request is in progress: a stop lets it finish
  Request req;
  {
    const auto& h = hp->get();
    req.method = std::string(h.method_string());
    req.target = std::string(h.target());
    req.remote = c->remote;
    for (const auto& f : h) req.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    ex.keep_alive = h.keep_alive();
  }
  ex.method = req.method;
  ex.target = req.target;
  ex.head = req.method == "HEAD";
  const bool body_pending = !hp->is_done();
  // Answers sent before the body is read: the body stays unread, so the connection closes after the answer.
  auto reject = [&](Response r) {
    if (body_pending) ex.keep_alive = false;
    return respond(c, ex, std::move(r));
  };

  const auto origin = req.header("Origin");
  const bool origin_listed =
      origin && std::find(opt.cors_origins.begin(), opt.cors_origins.end(), *origin) != opt.cors_origins.end();
  if (origin_listed) ex.allow_origin = *origin;
  bool origin_ok = !origin || origin_listed;
  if (!origin_ok) {
    const auto host = req.header("Host");
    if (host && lower(*origin) == "http://" + lower(*host) && (!opt.loopback || is_loopback_name(host_of(*host))))
      origin_ok = true;  // the server's own pages
  }

  const std::string_view target = req.target;
  const auto qpos = target.find('?');
  const std::string_view raw_path = target.substr(0, qpos);
  if (raw_path.empty() || raw_path.front() != '/')
    co_return co_await reject(
        Response::error(400, ErrorCode::invalid_argument, "the request target must be a path starting with '/'"));
  auto path = percent_decode(raw_path);
  if (!path)
    co_return co_await reject(
        Response::error(400, ErrorCode::invalid_argument, "malformed percent-encoding in the request path"));
  req.path = std::move(*path);
  if (qpos != std::string_view::npos) {
    auto query = parse_query(target.substr(qpos + 1));
    if (!query)
      co_return co_await reject(
          Response::error(400, ErrorCode::invalid_argument, "malformed percent-encoding in the query string"));
    req.query = std::move(*query);
  }

  if (req.method == "OPTIONS") {
    if (origin && req.header("Access-Control-Request-Method")) {  // CORS preflight
      if (!origin_listed)
        co_return co_await reject(Response::error(
            403, ErrorCode::forbidden, fmt::format("origin {} is not allowed (see --cors-origin)", *origin)));
      Response r;
      r.status = 204;
      r.headers = {{"Access-Control-Allow-Methods", std::string(kAllowedMethods)},
                   {"Access-Control-Allow-Headers", std::string(kAllowedHeaders)},
                   {"Access-Control-Max-Age", "600"}};
      co_return co_await reject(std::move(r));
    }
    auto methods = router.methods_for(req.path);
    if (methods.empty())
      co_return co_await reject(Response::error(404, ErrorCode::not_found, "no such endpoint: " + req.path));
    Response r;
    r.status = 204;
    r.headers = {{"Allow", allow_header(methods) + ", OPTIONS"}};
    co_return co_await reject(std::move(r));
  }

  auto match = router.match(ex.head ? "GET" : req.method, req.path);
  if (match.handler == nullptr) {
    if (!match.path_known)
      co_return co_await reject(Response::error(404, ErrorCode::not_found, "no such endpoint: " + req.path));
    const auto allow = allow_header(router.methods_for(req.path));
    auto r = Response::error(405, ErrorCode::invalid_argument,
                             fmt::format("method {} is not allowed here; allowed: {}", req.method, allow));
    r.headers.emplace_back("Allow", allow);
    co_return co_await reject(std::move(r));
  }

  if (is_state_changing(req.method)) {
    if (!origin_ok)
      co_return co_await reject(
          Response::error(403, ErrorCode::forbidden,
                          fmt::format("cross-origin request from {} is not allowed (see --cors-origin)", *origin)));
    if (!opt.token.empty()) {
      const auto auth = req.header("Authorization");
      constexpr std::string_view kBearer = "Bearer ";
      const bool ok = auth && auth->size() > kBearer.size() && lower(auth->substr(0, kBearer.size())) == "bearer " &&
                      constant_time_equal(std::string_view(*auth).substr(kBearer.size()), opt.token);
      if (!ok) {
        auto r =
            Response::error(401, ErrorCode::unauthorized,
                            auth ? "wrong API token" : "this call needs the API token: Authorization: Bearer TOKEN");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"otter\"");
        co_return co_await reject(std::move(r));
      }
    }
  }

  const bool spooled = match.mode == BodyMode::spooled;
  const std::uint64_t limit = spooled ? opt.max_upload_bytes : opt.max_body_bytes;
  if (const auto len = hp->content_length(); len && *len > limit)
    co_return co_await reject(
        Response::error(413, ErrorCode::payload_too_large,
                        fmt::format("request body of {} bytes exceeds the limit of {} bytes", *len, limit)));
  if (body_pending) {
    const auto expect = req.header("Expect");
    if (expect && lower(*expect) == "100-continue") {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      c->stream.expires_after(opt.write_timeout);
      auto [ec, n] = co_await asio::async_write(c->stream, asio::buffer(kContinue.data(), kContinue.size()), kTuple);
      if (ec) co_return false;
    }
  }

  // Reads the rest of the body into parser `p`; an error response (or nothing, on disconnect) ends the exchange.
  auto body_error = [&](const beast::error_code& ec) -> std::optional<Response> {
    ex.keep_alive = false;
    if (ec == bhttp::error::body_limit)
      return Response::error(413, ErrorCode::payload_too_large,
                             fmt::format("request body exceeds the limit of {} bytes", limit));
    if (is_disconnect(ec)) return std::nullopt;
    return Response::error(400, ErrorCode::invalid_argument, "malformed request body: " + ec.message());
  };
  SpoolFile spool;
  if (!spooled) {
    bhttp::request_parser<bhttp::string_body> p(std::move(*hp));
    p.body_limit(limit);
    while (!p.is_done()) {
      c->stream.expires_after(opt.body_timeout);
      auto [ec, n] = co_await bhttp::async_read_some(c->stream, buf, p, kTuple);
      if (ec) {
        auto r = body_error(ec);
        if (r) co_await respond(c, ex, std::move(*r));
        co_return false;
      }
    }
    req.body = std::move(p.get().body());
  } else {
    bhttp::request_parser<bhttp::file_body> p(std::move(*hp));
    p.body_limit(limit);
    spool.path = spool_path();
    beast::error_code ec;
    p.get().body().open(spool.path.c_str(), beast::file_mode::write_new, ec);
    if (ec) {
      spool.path.clear();
      spdlog::error("cannot spool a request body in {}: {}", opt.spool_dir, ec.message());
      co_return co_await reject(
          Response::error(500, ErrorCode::io, "cannot store the request body: " + ec.message()));
    }
    while (!p.is_done()) {
      c->stream.expires_after(opt.body_timeout);
      auto [rec, n] = co_await bhttp::async_read_some(c->stream, buf, p, kTuple);
      if (rec) {
        spool.remove();
        auto r = body_error(rec);
        if (r) co_await respond(c, ex, std::move(*r));
        co_return false;
      }
    }
    p.get().body().close();
    req.body_file = spool.path;
  }

  req.params = std::move(match.params);
  auto state = std::make_shared<ReplyState>(c->stream.get_executor());
  {
    auto guard = std::make_shared<ReplyGuard>(state);
    const auto executor = c->stream.get_executor();
    Responder responder(
        [guard](Response r) {
          auto& st = *guard->state;
          if (st.done) {
            spdlog::warn("a request handler answered twice; the second answer is dropped");
            return;
          }
          st.response = std::move(r);
          st.finish();
        },
        [guard, executor]() -> std::shared_ptr<EventSink> {
          auto& st = *guard->state;
          if (st.done) return nullptr;
          st.sink = std::make_shared<SseSink>(executor);
          st.finish();
          return st.sink;
        });
    guard.reset();
    try {
      (*match.handler)(req, std::move(responder));
    } catch (const std::exception& e) {
      spdlog::error("handler for {} {} threw: {}", printable(req.method, 16), printable(req.path), e.what());
      if (!state->done) {
        state->response = Response::error(500, ErrorCode::internal, "internal error");
        state->done = true;
      }
    }
  }
  while (!state->done) {
    if (!state->timer) state->timer.emplace(state->executor);
    state->timer->expires_at(asio::steady_timer::time_point::max());
    co_await state->timer->async_wait(kTuple);
  }
  spool.remove();  // the handler is done with it
  if (state->sink) {
    co_await run_stream(c, ex, state->sink);
    co_return false;
  }
  co_return co_await respond(c, ex, std::move(*state->response));
}

Server::Server(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

// The timer cancel() and stream close() calls have throwing signatures but do not fail on this platform (epoll
// reactor); beyond them only std::bad_alloc could escape.
Server::~Server() {  // NOLINT(bugprone-exception-escape)
  impl_->stopping = true;
  beast::error_code ec;
  impl_->acceptor.close(ec);
  for (auto& [id, weak] : impl_->conns) {
    if (auto c = weak.lock()) {
      if (c->sink) c->sink->close();
      c->close();
    }
  }
}

Result<std::unique_ptr<Server>> Server::listen(boost::asio::io_context& io, ServerOptions options,
                                               const Router& router) {
  auto impl = std::make_shared<Impl>(io, std::move(options), router);
  auto& opt = impl->opt;
  if (!opt.spool_dir.empty()) {
    namespace fs = std::filesystem;
    std::error_code fec;
    fs::create_directories(opt.spool_dir, fec);
    if (fec) return make_error(ErrorCode::io, fmt::format("creating {}: {}", opt.spool_dir, fec.message()));
    for (fs::directory_iterator it(opt.spool_dir, fec), end; !fec && it != end; it.increment(fec)) {
      if (it->path().filename().string().rfind("req-", 0) == 0) fs::remove(it->path(), fec);
    }
  }
  boost::system::error_code ec;
  asio::ip::address addr;
  if (lower(opt.host) == "localhost") {
    addr = asio::ip::make_address_v4("127.0.0.1");
  } else {
    addr = asio::ip::make_address(opt.host, ec);
    if (ec) {
      tcp::resolver resolver(io);
      auto results = resolver.resolve(opt.host, std::to_string(opt.port), ec);
      if (ec || results.empty())
        return make_error(ErrorCode::config,
                          fmt::format("cannot resolve listen host {}: {}", opt.host, ec.message()));
      addr = results.begin()->endpoint().address();
    }
  }
  const tcp::endpoint ep(addr, opt.port);
  auto& acc = impl->acceptor;
  if (acc.open(ep.protocol(), ec); ec)
    return make_error(ErrorCode::io, fmt::format("socket for {}: {}", endpoint_text(ep), ec.message()));
  acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (acc.bind(ep, ec); ec)
    return make_error(ErrorCode::io, fmt::format("cannot listen on {}: {}", endpoint_text(ep), ec.message()));
  if (acc.listen(asio::socket_base::max_listen_connections, ec); ec)
    return make_error(ErrorCode::io, fmt::format("cannot listen on {}: {}", endpoint_text(ep), ec.message()));
  const auto local = acc.local_endpoint(ec);
  impl->bound_port = local.port();
  impl->bound_host = local.address().to_string();
  asio::co_spawn(io, impl->accept_loop(impl), [](const std::exception_ptr& e) { log_exception("http accept", e); });
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::uint16_t Server::port() const { return impl_->bound_port; }

std::string Server::url() const {
  const auto& h = impl_->bound_host;
  return h.find(':') != std::string::npos ? fmt::format("http://[{}]:{}", h, impl_->bound_port)
                                          : fmt::format("http://{}:{}", h, impl_->bound_port);
}

std::size_t Server::connections() const { return impl_->conns.size(); }

void Server::stop(std::function<void()> drained) { impl_->stop(std::move(drained)); }

struct WorkerPool::Impl {
  Impl(asio::io_context& io_ctx, unsigned threads) : io(io_ctx), pool(threads == 0 ? 1 : threads) {}
  asio::io_context& io;
  asio::thread_pool pool;
};

WorkerPool::WorkerPool(boost::asio::io_context& io, unsigned threads) : impl_(std::make_unique<Impl>(io, threads)) {}

WorkerPool::~WorkerPool() {
  impl_->pool.stop();
  impl_->pool.join();
}

void WorkerPool::run(std::function<void()> work, std::function<void()> then) {
  asio::post(impl_->pool, [&io = impl_->io, guard = asio::make_work_guard(impl_->io), work = std::move(work),
                           then = std::move(then)]() mutable {
    try {
      work();
    } catch (const std::exception& e) {
      spdlog::error("background work threw: {}", e.what());
    }
    asio::post(io, std::move(then));
  });
}

}  // namespace otter::server::http
