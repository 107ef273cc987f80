// otter fuzzing — otter-server in-process without sockets: the real router and handlers (register_routes) on a real
// SQLite store (in memory, fresh for every input), a real artifact root (a temp dir, restored for every input) and
// the real job engine, whose device channel answers at once (no network). Requests are handed to the handlers the way
// http_server.cpp does after parsing: target check, percent-decoding, query parsing, OPTIONS, routing; spooled routes
// get their body in a temp file.
//
// Properties checked on every answer: exactly one answer (or an event stream), no exception out of a handler, no 500,
// a status from 100 to 599, and a JSON content type always carries a parsable JSON body (an error body with its
// numbered code).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "fuzz_check.hpp"
#include "otter/server/api.hpp"
#include "otter/server/artifacts.hpp"
#include "otter/server/config.hpp"
#include "otter/server/events.hpp"
#include "otter/server/http.hpp"
#include "otter/server/jobs.hpp"
#include "otter/server/metrics.hpp"
#include "otter/server/store.hpp"

namespace otter::fuzz {

namespace fs = std::filesystem;

/// A device channel that answers every push and probe at once (posted on the io_context): success, or an error when
/// the address's port is odd, so both outcomes are reached.
class InstantChannel final : public server::DeviceChannel {
 public:
  explicit InstantChannel(boost::asio::io_context& io) : io_(io) {}
  std::function<void()> push(Transfer t, Progress progress, Done done) override {
    boost::asio::post(io_, [t, progress, done] {
      if (!t.address.empty() && (t.address.back() - '0') % 2 == 1)
        return done(make_error(ErrorCode::connect_failed, "fuzz channel: odd port"));
      progress(t.size / 2, t.size);
      Outcome o;
      o.bytes_sent = t.size;
      o.device_id = "fuzz";
      done(o);
    });
    return [] {};
  }
  void probe(std::string address, std::string /*key*/, std::function<void(server::ProbeResult)> done) override {
    boost::asio::post(io_, [address, done] {
      server::ProbeResult r;
      r.online = !address.empty() && (address.back() - '0') % 2 == 0;
      if (!r.online) r.error = Error(ErrorCode::connect_failed, "fuzz channel: odd port");
      r.device_id = "fuzz";
      done(r);
    });
  }

 private:
  boost::asio::io_context& io_;
};

class NullSink final : public server::http::EventSink {
 public:
  bool send(std::string_view, std::string_view, std::int64_t) override { return true; }
  [[nodiscard]] bool closed() const override { return false; }
  void on_close(std::function<void()> fn) override { close_fns.push_back(std::move(fn)); }
  std::vector<std::function<void()>> close_fns;
};

/// The temp dirs, created once per process.
struct Dirs {
  Dirs() {
    char tmpl[] = "/tmp/otter-fuzz-server-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    if (d == nullptr) std::abort();
    base = d;
    root = base / "artifacts";
    spool = base / "spool";
    fs::create_directories(spool);
    fs::create_directories(base / "outside");
    std::ofstream(base / "outside" / "secret") << "secret";
    spdlog::set_level(spdlog::level::off);
  }
  ~Dirs() {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
  /// The artifact root as every input finds it.
  void reset_root() const {
    std::error_code ec;
    fs::remove_all(root, ec);
    fs::create_directories(root / "fw" / "esp32");
    std::ofstream(root / "hello.txt") << "hello from otter\n";
    std::ofstream(root / "firmware.bin") << std::string(3000, 'F');
    std::ofstream(root / "fw" / "esp32" / "app.bin") << "app";
    fs::create_directory_symlink(base / "outside", root / "out", ec);
  }
  fs::path base, root, spool;
};

inline Dirs& dirs() {
  static Dirs d;
  return d;
}

struct Answer {
  bool replied = false;
  bool streamed = false;
  server::http::Response response;
};

class ServerUnderTest {
 public:
  ServerUnderTest() {
    dirs().reset_root();
    cfg_.data_dir = dirs().base.string();
    cfg_.artifacts_dir = dirs().root.string();
    cfg_.retries = 1;
    auto s = server::open_sqlite_store(":memory:");
    if (!s) std::abort();
    store_ = std::move(*s);
    auto a = server::ArtifactStore::open(cfg_.artifacts_dir, 1 << 20);
    if (!a) std::abort();
    artifacts_ = std::move(*a);
    channel_ = std::make_unique<InstantChannel>(io_);
    jobs_ = server::make_job_engine(io_, cfg_, *store_, *artifacts_, events_, *channel_, &metrics_);
    // Two devices, so that both "device" forms of POST /api/upload are reached.
    for (const char* name : {"esp32-1", "esp32-2"}) {
      server::DeviceRecord d;
      d.name = name;
      d.address = std::string("127.0.0.1:1234") + (name[6] == '1' ? "4" : "5");
      d.key = "fuzz-device-key-0123456789";
      d.tags = {"demo"};
      if (!store_->create_device(d)) std::abort();
    }
    server::ApiContext ctx;
    ctx.cfg = &cfg_;
    ctx.store = store_.get();
    ctx.artifacts = artifacts_.get();
    ctx.jobs = jobs_.get();
    ctx.events = &events_;
    ctx.metrics = &metrics_;
    server::register_routes(router_, ctx);
  }
  ~ServerUnderTest() {
    jobs_.reset();
    io_.poll();
  }

  /// Dispatches one request as http_server.cpp does after the parser; `req.method`, `target`, `headers` and `body`
  /// are set by the caller.
  Answer dispatch(server::http::Request req) {
    using server::http::Response;
    Answer ans;
    const std::string_view target = req.target;
    const auto qpos = target.find('?');
    const std::string_view raw_path = target.substr(0, qpos);
    if (raw_path.empty() || raw_path.front() != '/') return rejected(400);
    auto path = server::http::percent_decode(raw_path);
    if (!path) return rejected(400);
    req.path = std::move(*path);
    if (qpos != std::string_view::npos) {
      auto query = server::http::parse_query(target.substr(qpos + 1));
      if (!query) return rejected(400);
      req.query = std::move(*query);
    }
    if (req.method == "OPTIONS") {
      (void)router_.methods_for(req.path);
      return rejected(204);
    }
    auto match = router_.match(req.method == "HEAD" ? "GET" : req.method, req.path);
    if (match.handler == nullptr) {
      if (match.path_known) (void)router_.methods_for(req.path);
      return rejected(match.path_known ? 405 : 404);
    }
    std::string spool;
    if (match.mode == server::http::BodyMode::spooled) {
      spool = (dirs().spool / "req-body").string();
      std::ofstream(spool, std::ios::binary | std::ios::trunc) << req.body;
      req.body.clear();
      req.body_file = spool;
    }
    req.params = std::move(match.params);
    auto sink = std::make_shared<NullSink>();
    server::http::Responder responder(
        [&ans](Response r) {
          OTTER_FUZZ_CHECK(!ans.replied && !ans.streamed);  // one answer
          ans.replied = true;
          ans.response = std::move(r);
        },
        [&ans, sink]() -> std::shared_ptr<server::http::EventSink> {
          OTTER_FUZZ_CHECK(!ans.replied && !ans.streamed);
          ans.streamed = true;
          return sink;
        });
    try {
      (*match.handler)(req, std::move(responder));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "handler for %s %s threw: %s\n", req.method.c_str(), req.path.c_str(), e.what());
      std::abort();
    }
    for (int i = 0; i < 1000 && !ans.replied && !ans.streamed; ++i) {
      if (io_.poll() == 0) break;
    }
    OTTER_FUZZ_CHECK(ans.replied || ans.streamed);  // a handler that never answers would hold the connection
    for (auto& fn : sink->close_fns) fn();
    if (!spool.empty()) fs::remove(spool);
    if (ans.replied) check(ans.response);
    // Let the job engine run what the request started (bounded).
    for (int i = 0; i < 1000; ++i) {
      if (io_.poll() == 0) break;
    }
    return ans;
  }

 private:
  static Answer rejected(int status) {
    Answer a;
    a.replied = true;
    a.response.status = status;
    return a;
  }

  static void check(const server::http::Response& r) {
    OTTER_FUZZ_CHECK(r.status >= 100 && r.status <= 599);
    if (r.status == 500) std::fprintf(stderr, "500: %s\n", r.body_text().c_str());
    OTTER_FUZZ_CHECK(r.status != 500);
    if (r.content_type == "application/json" && !r.body_text().empty()) {
      const auto j = nlohmann::json::parse(r.body_text(), nullptr, false);
      OTTER_FUZZ_CHECK(!j.is_discarded());
      if (r.status >= 400) {
        OTTER_FUZZ_CHECK(j.is_object() && (j.contains("error") || j.contains("message")));
        if (j.contains("error")) OTTER_FUZZ_CHECK(j["error"].is_object() && j["error"]["code"].is_number());
      }
    }
  }

  boost::asio::io_context io_;
  server::ServerConfig cfg_;
  std::unique_ptr<server::Store> store_;
  std::unique_ptr<server::ArtifactStore> artifacts_;
  server::EventBus events_;
  server::Metrics metrics_;
  std::unique_ptr<InstantChannel> channel_;
  std::unique_ptr<server::JobEngine> jobs_;
  server::http::Router router_;
};

}  // namespace otter::fuzz
