// otter tests — an in-process job engine on a real io_context, with a real SQLite store and artifact root in a
// temp directory. Everything runs on the test's thread: run_until() turns the io_context until a condition holds
// or a deadline passes (bounded waits, no sleeps).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "otter/server/artifacts.hpp"
#include "otter/server/config.hpp"
#include "otter/server/events.hpp"
#include "otter/server/jobs.hpp"
#include "otter/server/metrics.hpp"
#include "otter/server/store.hpp"
#include "otter/test/files.hpp"
#include "otter/test/temp_dir.hpp"

namespace otter::server::test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

inline constexpr std::string_view kKey = "otter-engine-test-key-0123";

/// Retries quick enough for tests.
inline ServerConfig fast_config() {
  ServerConfig cfg;
  cfg.concurrency = 64;
  cfg.retries = 3;
  cfg.retry_base = 10ms;
  cfg.connect_timeout = 3000ms;
  cfg.idle_timeout = 10'000ms;
  return cfg;
}

/// A port on 127.0.0.1 that nothing listens on (bound, then closed).
inline std::uint16_t closed_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto port = a.local_endpoint().port();
  a.close();
  return port;
}

class Harness {
 public:
  explicit Harness(ServerConfig config = fast_config(), std::unique_ptr<DeviceChannel> custom_channel = nullptr)
      : dir_("otter-jobs"), cfg(std::move(config)) {
    cfg.data_dir = (dir_ / "data").string();
    cfg.artifacts_dir = (dir_ / "artifacts").string();
    auto s = open_sqlite_store(cfg.db_path());
    if (!s) throw std::runtime_error(s.error().to_string());
    store = std::move(*s);
    auto a = ArtifactStore::open(cfg.artifacts_dir, cfg.max_upload_bytes);
    if (!a) throw std::runtime_error(a.error().to_string());
    artifacts = std::move(*a);
    channel = custom_channel ? std::move(custom_channel) : make_otter_channel(io, cfg);
    events.subscribe([this](const LiveEvent& e) { seen.push_back(e); });
    start_engine();
  }
  ~Harness() {
    engine.reset();
    // Let abandoned coroutines finish (bounded) before the io_context goes.
    guard_.reset();
    io.run_for(2s);
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  void start_engine() { engine = make_job_engine(io, cfg, *store, *artifacts, events, *channel, &metrics); }

  [[nodiscard]] const std::filesystem::path& dir() const { return dir_.path(); }
  [[nodiscard]] std::filesystem::path path(const std::filesystem::path& rel) const { return dir_ / rel; }

  /// Writes `size` pseudo-random bytes at `rel` in the artifact root; returns its SHA-256 hex.
  std::string artifact(const std::string& rel, std::uint64_t size, std::uint64_t seed = 1) {
    const auto p = std::filesystem::path(cfg.artifacts_dir) / rel;
    otter::test::write_random_file(p, size, seed);
    return otter::test::sha256_file_hex(p);
  }

  void add_device(const std::string& name, const std::string& address, std::string_view key = kKey,
                  std::vector<std::string> tags = {}) {
    DeviceRecord d;
    d.name = name;
    d.address = address;
    d.key = std::string(key);
    d.tags = std::move(tags);
    auto r = store->create_device(std::move(d));
    if (!r) throw std::runtime_error(r.error().to_string());
  }

  /// Turns the io_context until pred() holds: false if `timeout` passed first.
  bool run_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      if (io.stopped()) io.restart();
      io.run_for(5ms);
    }
    return true;
  }

  /// The job as the engine sees it now.
  JobRecord job(std::int64_t id) {
    auto r = engine->get(id);
    if (!r || !*r) throw std::runtime_error("job " + std::to_string(id) + " not found");
    return **r;
  }
  /// The job as persisted.
  JobRecord stored_job(std::int64_t id) {
    auto r = store->get_job(id);
    if (!r || !*r) throw std::runtime_error("job " + std::to_string(id) + " not in the store");
    return **r;
  }
  bool wait_final(std::int64_t id, std::chrono::milliseconds timeout) {
    return run_until([&] { return is_final(job(id).state); }, timeout);
  }

  static const JobTarget& target(const JobRecord& j, const std::string& device) {
    for (const auto& t : j.targets) {
      if (t.device == device) return t;
    }
    throw std::runtime_error("no target " + device);
  }

  /// Audit events of a type (optionally for one device).
  std::vector<EventRecord> audit(const std::string& type, std::optional<std::string> device = std::nullopt) {
    auto all = store->list_events(0, 1'000'000);
    if (!all) throw std::runtime_error(all.error().to_string());
    std::vector<EventRecord> out;
    for (auto& e : *all) {
      if (e.type == type && (!device || e.device == device)) out.push_back(std::move(e));
    }
    return out;
  }
  std::vector<LiveEvent> live(const std::string& type) const {
    std::vector<LiveEvent> out;
    for (const auto& e : seen) {
      if (e.type == type) out.push_back(e);
    }
    return out;
  }

  /// A JSON description of the job for assertion messages.
  static std::string describe(const JobRecord& j) {
    nlohmann::json t = nlohmann::json::array();
    for (const auto& x : j.targets) {
      t.push_back({{"device", x.device},
                   {"state", to_string(x.state)},
                   {"bytes", x.bytes},
                   {"attempts", x.attempts},
                   {"unchanged", x.unchanged},
                   {"error", x.error_code ? error_name(*x.error_code) : ""},
                   {"message", x.error_message}});
    }
    return nlohmann::json({{"id", j.id}, {"state", to_string(j.state)}, {"targets", t}}).dump(1);
  }

 private:
  otter::test::TempDir dir_;

 public:
  asio::io_context io;
  ServerConfig cfg;
  std::unique_ptr<Store> store;
  std::unique_ptr<ArtifactStore> artifacts;
  EventBus events{std::chrono::milliseconds(200)};
  Metrics metrics;
  std::unique_ptr<DeviceChannel> channel;
  std::unique_ptr<JobEngine> engine;
  std::vector<LiveEvent> seen;

 private:
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_{io.get_executor()};
};

}  // namespace otter::server::test
