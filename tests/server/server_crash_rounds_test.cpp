// otter-server killed with SIGKILL at seeded random points over eight rounds of overlapping fan-outs, and restarted
// each time: after a job's submission, within milliseconds of a POST /api/v1/jobs, after a random number of device
// results, at a random byte-progress fraction, while it recovers, right after an acknowledged cancel. After the last
// restart every job is final with exactly the devices it asked for, every succeeded device holds the artifact's
// SHA-256, the audit trail never shows two final results of one device in one job, the database passes
// PRAGMA integrity_check and nothing is left unfinished.
//
// The kill points come from std::mt19937 seeded by OTTER_CRASH_SEED (a decimal integer) or, without it, by
// std::random_device; the seed is printed first so that a failing run can be replayed with the same kill points
// (the timing of the processes still varies).
//
// Real processes: otter-server (REST API, SQLite) and one otter-agent simulating 60 devices at 128 KiB/s per
// connection, so that transfers are in flight at every kill.
#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "http_client.hpp"
#include "otter/server/store.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/files.hpp"
#include "otter/test/process.hpp"
#include "otter/test/tcp.hpp"
#include "otter/test/temp_dir.hpp"

namespace otter::server {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using otter::test::AgentProcess;
using otter::test::Process;
using otter::test::http::EventStream;
using otter::test::http::ServerProcess;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kKey = "otter-crash-rounds-key-0123";
constexpr std::size_t kDevices = 60;
constexpr std::uint64_t kRate = 128 * 1024;  ///< bytes/s per connection: a 256 KiB transfer takes 2 s
constexpr unsigned kConcurrency = 32;        ///< fewer than the targets of two jobs: some wait in the queue
constexpr auto kKillPointTimeout = 60s;      ///< a kill point that is not reached in this time fails the test

enum class Kill { created, in_post, results, bytes, recovering, cancel };

std::string_view kill_name(Kill k) {
  switch (k) {
    case Kill::created:
      return "right after a job was created";
    case Kill::in_post:
      return "within milliseconds of a POST /api/v1/jobs";
    case Kill::results:
      return "after K device results";
    case Kill::bytes:
      return "at a byte-progress fraction";
    case Kill::recovering:
      return "while recovering";
    case Kill::cancel:
      return "right after an acknowledged cancel";
  }
  return "?";
}

/// OTTER_CRASH_SEED if set (nullopt if it is not a decimal integer), else a fresh random seed.
std::optional<std::uint64_t> crash_seed() {
  const char* env = std::getenv("OTTER_CRASH_SEED");
  if (env == nullptr || *env == '\0') {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32U) | rd();
  }
  std::uint64_t v = 0;
  const char* end = env + std::strlen(env);
  const auto [ptr, ec] = std::from_chars(env, end, v);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return v;
}

bool is_final(const std::string& state) { return state == "succeeded" || state == "failed" || state == "canceled"; }

/// What the test asked for: the job's devices are exactly `devices` (names, no duplicates).
struct Tracked {
  std::int64_t id = 0;  ///< 0 while unknown (a POST cut by the kill: resolved by its unique "as" name)
  int round = 0;
  std::string artifact;
  std::string as;
  std::set<std::string> devices;
  bool maybe_absent = false;  ///< the kill may have landed before the job was stored (never answered)
  bool cancel_acked = false;
  std::map<std::string, std::string> at_cancel;  ///< device → state in the cancel answer
};

class Harness {
 public:
  Harness() : dir_("otter-crash-rounds"), data_(dir_ / "data") {
    for (const auto& [name, bytes] : {std::pair{"fw/a.bin", 256 * 1024}, std::pair{"fw/b.bin", 160 * 1024}}) {
      const auto path = data_ / "artifacts" / name;
      otter::test::write_random_file(path, bytes, bytes);
      sha_[name] = otter::test::sha256_file_hex(path);
      size_[name] = bytes;
    }
    key_file_ = otter::test::write_key_file(dir_ / "agent.key", kKey);
    fleet_ = std::make_unique<AgentProcess>(
        std::vector<std::string>{otter::test::agent_bin(), "--listen", "127.0.0.1:0", "--root",
                                 (dir_ / "fleet").string(), "--key-file", key_file_, "--devices",
                                 std::to_string(kDevices), "--port-base", "0", "--rate", std::to_string(kRate),
                                 "--quiet"},
        kDevices, 60s);
    for (std::size_t i = 0; i < kDevices; ++i) names_.push_back(fmt::format("dev-{:02}", i));
  }

  ~Harness() {
    if (fleet_) fleet_->stop();
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  void start() {
    Process::Options o;
    o.stderr_file = (dir_ / fmt::format("server-{}.log", ++runs_)).string();
    server_ =
        std::make_unique<ServerProcess>(std::vector<std::string>{"--data", data_.string(), "--log-level", "warn",
                                                                 "--concurrency", std::to_string(kConcurrency)},
                                        o);
  }

  /// SIGKILL to the server's process group; true if it died of it (not of something else before).
  bool kill() {
    server_->process().kill();
    const auto code = server_->process().exit_code();
    server_.reset();
    return code == 128 + SIGKILL;
  }

  ServerProcess& server() { return *server_; }
  const std::vector<std::string>& names() const { return names_; }
  const std::string& sha(const std::string& artifact) { return sha_.at(artifact); }
  std::uint64_t size(const std::string& artifact) { return size_.at(artifact); }
  const otter::test::AgentEndpoint& device(const std::string& name) const {
    return fleet_->device(std::stoul(name.substr(4)));
  }
  const std::filesystem::path& data() const { return data_; }

  /// The last lines of the current (or last) server log, for failure messages.
  std::string log_tail() const {
    const auto path = dir_ / fmt::format("server-{}.log", runs_);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return {};
    const std::string text = otter::test::read_file(path);
    return "--- " + path.filename().string() + " ---\n" +
           (text.size() > 4000 ? text.substr(text.size() - 4000) : text);
  }

  void register_devices() {
    for (std::size_t i = 0; i < kDevices; ++i) {
      json tags = json::array();
      if (i % 2 == 0) tags.push_back("even");
      if (i < 24) tags.push_back("low");
      if (i >= 20 && i < 50) tags.push_back("mid");
      const json body = {
          {"name", names_[i]}, {"address", fleet_->device(i).address()}, {"key", std::string(kKey)}, {"tags", tags}};
      auto r = server_->client().post("/api/v1/devices", body);
      if (r.status != 201)
        throw std::runtime_error("POST /api/v1/devices: " + std::to_string(r.status) + " " + r.body);
    }
  }

  /// The devices carrying `tag` (the same rule as register_devices()).
  std::set<std::string> tagged(const std::string& tag) const {
    std::set<std::string> out;
    for (std::size_t i = 0; i < kDevices; ++i) {
      const bool has = tag == "even" ? i % 2 == 0 : tag == "low" ? i < 24 : i >= 20 && i < 50;
      if (has) out.insert(names_[i]);
    }
    return out;
  }

 private:
  otter::test::TempDir dir_;
  std::filesystem::path data_;
  std::string key_file_;
  std::map<std::string, std::string> sha_;
  std::map<std::string, std::uint64_t> size_;
  std::unique_ptr<AgentProcess> fleet_;
  std::vector<std::string> names_;
  std::unique_ptr<ServerProcess> server_;
  int runs_ = 0;
};

/// Sums a job's acknowledged bytes from target.progress / target.updated events.
struct ByteCounter {
  std::int64_t job = 0;
  std::map<std::string, std::uint64_t> bytes;
  std::uint64_t sum() const {
    std::uint64_t s = 0;
    for (const auto& [d, b] : bytes) s += b;
    return s;
  }
  void feed(const json& data) {
    if (!data.is_object() || data.value("job", std::int64_t{0}) != job || !data.contains("bytes")) return;
    bytes[data.at("device").get<std::string>()] = data.at("bytes").get<std::uint64_t>();
  }
};

json parse(const std::string& text) { return json::parse(text, nullptr, false); }

TEST(ServerCrash, SeededKillNineRoundsWithOverlappingJobs) {
  const auto seed = crash_seed();
  ASSERT_TRUE(seed) << "OTTER_CRASH_SEED must be a decimal integer, not '" << std::getenv("OTTER_CRASH_SEED") << "'";
  std::cout << fmt::format("[ seed     ] OTTER_CRASH_SEED={} (set it to replay these kill points)\n", *seed);
  SCOPED_TRACE(fmt::format("OTTER_CRASH_SEED={}", *seed));
  std::seed_seq sseq{static_cast<std::uint32_t>(*seed), static_cast<std::uint32_t>(*seed >> 32U)};
  std::mt19937 rng(sseq);
  auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const auto t_start = Clock::now();

  Harness h;
  h.start();
  ASSERT_NO_THROW(h.register_devices());

  // Every kind of kill point once (results and bytes twice), in a seeded order; "while recovering" needs an earlier
  // round to recover from.
  std::vector<Kill> plan = {Kill::created, Kill::in_post, Kill::results,    Kill::bytes,
                            Kill::results, Kill::bytes,   Kill::recovering, Kill::cancel};
  std::shuffle(plan.begin(), plan.end(), rng);
  if (plan.front() == Kill::recovering) std::swap(plan.front(), plan.back());

  std::vector<Tracked> jobs;
  std::set<std::string> as_names;
  std::chrono::microseconds post_latency{5000};  ///< of the last POST /api/v1/jobs: the in_post kill draws from 0–2×

  // A new job: a random subset of the fleet by name (with one name twice: the job holds it once) or a tag.
  auto make_job = [&](int round, bool all) -> std::pair<json, Tracked> {
    Tracked t;
    t.round = round;
    t.artifact = uniform(0, 1) == 0 ? "fw/a.bin" : "fw/b.bin";
    t.as = fmt::format("r{}-{}.bin", round, jobs.size());
    json body = {{"artifact", t.artifact}, {"as", t.as}};
    const int how = all ? 0 : uniform(0, 2);
    if (how == 2) {
      static const std::vector<std::string> kTags = {"even", "low", "mid"};
      const auto& tag = kTags[static_cast<std::size_t>(uniform(0, 2))];
      body["tag"] = tag;
      t.devices = h.tagged(tag);
    } else {
      std::vector<std::string> names = h.names();
      std::shuffle(names.begin(), names.end(), rng);
      names.resize(all ? kDevices : static_cast<std::size_t>(uniform(20, static_cast<int>(kDevices))));
      t.devices.insert(names.begin(), names.end());
      names.push_back(names.front());
      body["devices"] = names;
    }
    return {body, t};
  };

  // Submits through the API (expects 201) and tracks the job.
  auto submit = [&](int round, bool all = false) -> std::optional<std::size_t> {
    auto [body, t] = make_job(round, all);
    const auto t0 = Clock::now();
    auto r = h.server().client().post("/api/v1/jobs", body);
    post_latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
    EXPECT_EQ(r.status, 201) << r.body;
    if (r.status != 201) return std::nullopt;
    t.id = r.json().at("id").get<std::int64_t>();
    as_names.insert(t.as);
    jobs.push_back(std::move(t));
    return jobs.size() - 1;
  };

  auto open_events = [&]() -> std::unique_ptr<EventStream> {
    try {
      return std::make_unique<EventStream>(h.server().host(), h.server().port());
    } catch (const std::exception& e) {
      ADD_FAILURE() << "event stream: " << e.what();
      return nullptr;
    }
  };

  // Reads events until pred(type, data) holds; false on timeout or a closed stream.
  auto wait_event = [&](EventStream& es, const std::function<bool(const std::string&, const json&)>& pred) {
    return es
        .next_matching(
            [&](const EventStream::Event& ev) { return !ev.type.empty() && pred(ev.type, parse(ev.data)); },
            kKillPointTimeout)
        .has_value();
  };

  auto final_event = [](const std::string& type, const json& d) {
    return type == "target.updated" && d.is_object() && is_final(d.value("state", std::string()));
  };

  int round = 0;
  for (const Kill kind : plan) {
    ++round;
    std::string detail;
    if (round > 1) h.start();

    switch (kind) {
      case Kill::created: {
        auto idx = submit(round);
        ASSERT_TRUE(idx);
        detail = fmt::format("job {} ({} devices) answered 201", jobs[*idx].id, jobs[*idx].devices.size());
        break;
      }
      case Kill::in_post: {
        auto [body, t] = make_job(round, false);
        t.maybe_absent = true;
        as_names.insert(t.as);
        const std::string text = body.dump();
        const std::string req = fmt::format(
            "POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Type: "
            "application/json\r\nContent-Length: {}\r\n\r\n{}",
            h.server().port(), text.size(), text);
        otter::test::TcpClient c("127.0.0.1", h.server().port(), 5s);
        const auto delay = std::chrono::microseconds(uniform(0, 2 * static_cast<int>(post_latency.count())));
        ASSERT_TRUE(c.send_all(req));
        // The kill point itself (fault timing, not synchronisation): between 0 and twice the time the last POST took
        // to be answered, so that the kill lands before, during or after the job is stored.
        if (delay.count() > 0) std::this_thread::sleep_for(delay);
        ASSERT_TRUE(h.kill()) << h.log_tail();
        c.wait_closed(5s);
        const std::string& raw = c.discarded();
        // Nothing, a 201 cut short by the kill (unacknowledged), or a whole 201: never another answer.
        EXPECT_TRUE(raw.empty() || raw.rfind("HTTP/1.1 201", 0) == 0) << "unexpected answer: " << raw;
        const auto head_end = raw.find("\r\n\r\n");
        const json answer = head_end == std::string::npos ? json() : parse(raw.substr(head_end + 4));
        if (answer.is_object() && answer.contains("id")) {
          t.id = answer.at("id").get<std::int64_t>();
          t.maybe_absent = false;  // acknowledged: it must survive
        }
        detail = fmt::format("{} µs after the request; {}", delay.count(),
                             t.maybe_absent ? "no answer" : fmt::format("answered 201 (job {})", t.id));
        jobs.push_back(std::move(t));
        break;
      }
      case Kill::results: {
        auto es = open_events();
        ASSERT_TRUE(es);
        auto idx = submit(round);
        ASSERT_TRUE(idx);
        const int k = uniform(1, 20);
        int seen = 0;
        ASSERT_TRUE(wait_event(
            *es, [&](const std::string& type, const json& d) { return final_event(type, d) && ++seen >= k; }))
            << fmt::format("{} of {} device results seen\n", seen, k) << h.log_tail();
        detail = fmt::format("after {} device results (job {} has {} devices)", k, jobs[*idx].id,
                             jobs[*idx].devices.size());
        break;
      }
      case Kill::bytes: {
        auto es = open_events();
        ASSERT_TRUE(es);
        auto idx = submit(round);
        ASSERT_TRUE(idx);
        const Tracked& t = jobs[*idx];
        const double f = std::uniform_real_distribution<double>(0.05, 0.85)(rng);
        const auto goal = static_cast<std::uint64_t>(f * static_cast<double>(t.devices.size() * h.size(t.artifact)));
        ByteCounter bc{t.id, {}};
        ASSERT_TRUE(wait_event(*es,
                               [&](const std::string& type, const json& d) {
                                 if (type == "target.progress" || type == "target.updated") bc.feed(d);
                                 return bc.sum() >= goal;
                               }))
            << fmt::format("{} of {} bytes seen\n", bc.sum(), goal) << h.log_tail();
        detail = fmt::format("job {} at {:.0f}% of its bytes ({} devices)", t.id, 100.0 * f, t.devices.size());
        break;
      }
      case Kill::recovering: {
        // What is left to do: the restarted server has already put it back in the queue (recovery runs before it
        // listens) and is connecting to the devices.
        auto es = open_events();
        ASSERT_TRUE(es);
        auto list = h.server().client().get("/api/v1/jobs?limit=500");
        ASSERT_EQ(list.status, 200) << list.body;
        int pending = 0;
        const json listed_now = list.json();
        for (const auto& j : listed_now.at("jobs")) {
          for (const auto& d : j.at("devices")) pending += is_final(d.at("state").get<std::string>()) ? 0 : 1;
        }
        if (pending == 0) {  // everything had finished: give it something to recover next time
          auto idx = submit(round);
          ASSERT_TRUE(idx);
          pending = static_cast<int>(jobs[*idx].devices.size());
        }
        const int k = uniform(0, std::min(5, pending));
        int seen = 0;
        if (k > 0) {
          ASSERT_TRUE(wait_event(
              *es, [&](const std::string& type, const json& d) { return final_event(type, d) && ++seen >= k; }))
              << fmt::format("{} of {} device results seen\n", seen, k) << h.log_tail();
        }
        detail = fmt::format("{} device results after the restart ({} targets were pending)", k, pending);
        break;
      }
      case Kill::cancel: {
        auto es = open_events();
        ASSERT_TRUE(es);
        auto idx = submit(round, true);
        ASSERT_TRUE(idx);
        Tracked& t = jobs[*idx];
        // Cancel once transfers of this job are in flight: up to a third of its bytes.
        const double f = std::uniform_real_distribution<double>(0.0, 0.33)(rng);
        const auto goal = std::max<std::uint64_t>(
            1, static_cast<std::uint64_t>(f * static_cast<double>(t.devices.size() * h.size(t.artifact))));
        ByteCounter bc{t.id, {}};
        ASSERT_TRUE(wait_event(*es, [&](const std::string& type, const json& d) {
          if (type == "target.progress" || type == "target.updated") bc.feed(d);
          return bc.sum() >= goal;
        })) << h.log_tail();
        auto r = h.server().client().post(fmt::format("/api/v1/jobs/{}/cancel", t.id), json::object());
        ASSERT_EQ(r.status, 200) << r.body;
        t.cancel_acked = true;
        std::map<std::string, int> counts;
        const json answer = r.json();
        for (const auto& d : answer.at("devices")) {
          t.at_cancel[d.at("device").get<std::string>()] = d.at("state").get<std::string>();
          ++counts[d.at("state").get<std::string>()];
        }
        detail = fmt::format("job {} canceled at {:.0f}% of its bytes: {}", t.id, 100.0 * f, json(counts).dump());
        break;
      }
    }
    if (kind != Kill::in_post) {
      ASSERT_TRUE(h.kill()) << h.log_tail();
    }
    std::cout << fmt::format("[ figures  ] round {}: killed {}: {}\n", round, kill_name(kind), detail);
  }

  // The last restart: everything reaches a final state.
  h.start();
  const auto t_restart = Clock::now();
  json listed;
  {
    const auto deadline = Clock::now() + 180s;
    for (;;) {
      auto r = h.server().client().get("/api/v1/jobs?limit=500");
      ASSERT_EQ(r.status, 200) << r.body;
      listed = r.json().at("jobs");
      const bool done = std::all_of(listed.begin(), listed.end(),
                                    [](const json& j) { return is_final(j.at("state").get<std::string>()); });
      if (done) break;
      ASSERT_LT(Clock::now(), deadline) << "jobs still unfinished:\n" << listed.dump(1) << "\n" << h.log_tail();
      std::this_thread::sleep_for(100ms);  // poll interval; the condition is re-checked against a deadline
    }
  }
  std::cout << fmt::format("[ figures  ] after the last restart the jobs finished in {} ms\n",
                           std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t_restart).count());

  // No job appeared that the test did not submit, none twice; a POST the kill cut is either fully there or absent.
  std::map<std::string, json> by_as;
  for (const auto& j : listed) {
    const auto as = j.at("as").get<std::string>();
    EXPECT_TRUE(as_names.count(as) == 1) << "a job nobody submitted: " << j.dump();
    EXPECT_TRUE(by_as.emplace(as, j).second) << "two jobs for one POST: " << as;
  }
  std::size_t expected_jobs = 0;
  int repushed = 0;
  int unchanged = 0;
  for (auto& t : jobs) {
    SCOPED_TRACE(fmt::format("job '{}' of round {}", t.as, t.round));
    const auto it = by_as.find(t.as);
    if (it == by_as.end()) {
      EXPECT_TRUE(t.maybe_absent) << "an acknowledged job is lost (id " << t.id << ")";
      continue;
    }
    ++expected_jobs;
    const json& j = it->second;
    if (t.id != 0) {
      EXPECT_EQ(j.at("id").get<std::int64_t>(), t.id);
    }
    t.id = j.at("id").get<std::int64_t>();
    const auto state = j.at("state").get<std::string>();
    EXPECT_EQ(state, t.cancel_acked ? "canceled" : "succeeded") << j.dump(1);
    EXPECT_EQ(j.at("sha256").get<std::string>(), h.sha(t.artifact));

    // Exactly the requested devices: as a set and as a count (no duplicate rows, none lost).
    std::multiset<std::string> rows;
    for (const auto& d : j.at("devices")) rows.insert(d.at("device").get<std::string>());
    EXPECT_EQ(std::set<std::string>(rows.begin(), rows.end()), t.devices);
    EXPECT_EQ(rows.size(), t.devices.size());

    for (const auto& d : j.at("devices")) {
      const auto name = d.at("device").get<std::string>();
      const auto ds = d.at("state").get<std::string>();
      if (t.cancel_acked) {
        const auto before = t.at_cancel.find(name);
        ASSERT_NE(before, t.at_cancel.end()) << name;
        if (is_final(before->second)) {
          EXPECT_EQ(ds, before->second) << name << ": a result changed after the cancel";
        } else {
          // In flight when the cancel was answered: it may have completed, or it is canceled; never retried.
          EXPECT_TRUE(ds == "canceled" || ds == "succeeded") << d.dump();
        }
      }
      if (d.at("attempts").get<int>() > 1) ++repushed;
      if (d.at("unchanged").get<bool>()) ++unchanged;
      if (ds != "succeeded") continue;
      EXPECT_EQ(d.at("bytes").get<std::uint64_t>(), d.at("total").get<std::uint64_t>()) << d.dump();
      const auto file = std::filesystem::path(h.device(name).root) / t.as;
      ASSERT_TRUE(std::filesystem::exists(file)) << file;
      EXPECT_EQ(otter::test::sha256_file_hex(file), h.sha(t.artifact)) << file;
    }
  }
  EXPECT_EQ(listed.size(), expected_jobs);
  std::cout << fmt::format(
      "[ figures  ] {} jobs; {} device results needed more than one attempt, {} were "
      "\"unchanged\" (the device had committed before the kill)\n",
      expected_jobs, repushed, unchanged);

  // A clean stop, then the database itself and its audit trail.
  EXPECT_EQ(h.server().stop(30s), 0);
  auto store = open_sqlite_store((h.data() / "otter.db").string());
  ASSERT_TRUE(store) << store.error().to_string();
  auto ok = (*store)->check_integrity();
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_TRUE(*ok) << "PRAGMA integrity_check failed";
  auto unfinished = (*store)->unfinished_jobs();
  ASSERT_TRUE(unfinished) << unfinished.error().to_string();
  EXPECT_TRUE(unfinished->empty()) << unfinished->size() << " unfinished job(s) in the database";

  std::map<std::pair<std::int64_t, std::string>, std::vector<std::string>> finished;  // (job, device) → states
  std::map<std::int64_t, int> job_finished;
  std::int64_t after = 0;
  for (;;) {
    auto page = (*store)->list_events(after, 1000);
    ASSERT_TRUE(page) << page.error().to_string();
    if (page->empty()) break;
    for (const auto& e : *page) {
      after = e.id;
      if (e.type == "target.finished" && e.job_id && e.device) {
        const json d = parse(e.data_json);
        finished[{*e.job_id, *e.device}].push_back(d.value("state", std::string("?")));
      }
      if (e.type == "job.finished" && e.job_id) ++job_finished[*e.job_id];
    }
  }
  std::size_t attempted_without_event = 0;
  for (const auto& t : jobs) {
    if (t.id == 0) continue;
    auto rec = (*store)->get_job(t.id);
    ASSERT_TRUE(rec && *rec) << "job " << t.id;
    EXPECT_LE(job_finished[t.id], 1) << "job " << t.id << " finished twice";
    for (const auto& target : (*rec)->targets) {
      const auto it = finished.find({t.id, target.device});
      if (it == finished.end()) {
        if (target.attempts > 0) ++attempted_without_event;
        continue;
      }
      EXPECT_EQ(it->second.size(), 1u) << "job " << t.id << ", " << target.device
                                       << ": final results in the audit trail: " << json(it->second).dump();
      EXPECT_EQ(it->second.back(), std::string(to_string(target.state)))
          << "job " << t.id << ", " << target.device << ": the audit trail disagrees with the stored result";
    }
  }
  // A result and its audit record are saved in one transaction, also when recovery ends an attempted target.
  EXPECT_EQ(attempted_without_event, 0u) << "attempted targets with no target.finished record";
  std::cout << fmt::format(
      "[ figures  ] audit trail: {} device results, {} attempted targets without one; "
      "whole test {} ms\n",
      finished.size(), attempted_without_event,
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t_start).count());
}

}  // namespace
}  // namespace otter::server
