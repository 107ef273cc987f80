// The job engine end to end: in-process on a real io_context with the real "otter" channel, a real SQLite store and
// artifact root, against real otter-agent processes (fan-out, a device down, a wrong key, stat-and-skip, cancel,
// resume after the device died, recovery after the engine went away, probe).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine_harness.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"

namespace otter::server::test {
namespace {

using json = nlohmann::json;
using otter::test::AgentProcess;

class JobsAgentTest : public ::testing::Test {
 protected:
  void make(ServerConfig cfg = fast_config()) {
    h = std::make_unique<Harness>(std::move(cfg));
    key_file = otter::test::write_key_file(h->path("agent.key"), kKey);
  }

  /// One agent process serving `devices` simulated devices (0: a single device at `root`).
  std::unique_ptr<AgentProcess> agent(const std::string& root, std::size_t devices = 0,
                                      std::vector<std::string> extra = {},
                                      const std::string& listen = "127.0.0.1:0") {
    std::vector<std::string> argv = {otter::test::agent_bin(), "--listen",   listen,   "--root",
                                     h->path(root).string(),   "--key-file", key_file, "--quiet"};
    if (devices > 0) {
      argv.insert(argv.end(), {"--devices", std::to_string(devices), "--port-base", "0"});
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<AgentProcess>(argv, devices == 0 ? 1 : devices);
  }

  /// Registers every device of the agent as PREFIX-NN; returns the names.
  std::vector<std::string> register_all(const AgentProcess& a, const std::string& prefix) {
    std::vector<std::string> names;
    for (std::size_t i = 0; i < a.devices().size(); ++i) {
      names.push_back(fmt::format("{}-{:02}", prefix, i));
      h->add_device(names.back(), a.device(i).address());
    }
    return names;
  }

  std::int64_t submit(std::vector<std::string> devices, const std::string& artifact = "fw/app.bin",
                      const std::string& as = "") {
    JobRequest r;
    r.artifact = artifact;
    r.devices = std::move(devices);
    r.as_name = as;
    auto job = h->engine->submit(std::move(r));
    if (!job) throw std::runtime_error(job.error().to_string());
    return job->id;
  }

  static std::string file_sha(const std::filesystem::path& p) {
    return std::filesystem::exists(p) ? otter::test::sha256_file_hex(p) : std::string("<missing>");
  }

  json finished_data(std::int64_t job, const std::string& device) {
    for (const auto& e : h->audit("target.finished", device)) {
      if (e.job_id == job) return json::parse(e.data_json);
    }
    return json();
  }

  std::unique_ptr<Harness> h;
  std::string key_file;
};

TEST_F(JobsAgentTest, FanOutTo50Devices) {
  make();
  auto fleet = agent("fleet", 50);
  const auto names = register_all(*fleet, "dev");
  const std::uint64_t size = (1u << 20) + 123;
  const std::string sha = h->artifact("fw/app.bin", size, 7);

  const auto t0 = std::chrono::steady_clock::now();
  const auto id = submit(names);
  ASSERT_TRUE(h->wait_final(id, 120s)) << Harness::describe(h->job(id));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  std::cout << fmt::format("[ figures  ] fan-out of {} bytes to {} devices: {} ms\n", size, names.size(), ms.count());
  RecordProperty("fanout_50_ms", static_cast<int>(ms.count()));

  const auto j = h->stored_job(id);
  EXPECT_EQ(j.state, JobState::succeeded) << Harness::describe(j);
  ASSERT_EQ(j.targets.size(), 50u);
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto& t = Harness::target(j, names[i]);
    EXPECT_EQ(t.state, TargetState::succeeded) << names[i];
    EXPECT_EQ(t.attempts, 1) << names[i];
    EXPECT_EQ(t.bytes, size);
    EXPECT_FALSE(t.unchanged);
    EXPECT_EQ(file_sha(std::filesystem::path(fleet->device(i).root) / "app.bin"), sha) << names[i];
    auto d = **h->store->get_device(names[i]);
    EXPECT_TRUE(d.online);
  }
  const std::string text = h->metrics.render(0, 0, 0);
  EXPECT_NE(text.find("otter_transfers_total{outcome=\"succeeded\"} 50\n"), std::string::npos) << text;
  EXPECT_NE(text.find(fmt::format("otter_transfer_bytes_total {}\n", 50 * size)), std::string::npos) << text;
  EXPECT_EQ(h->engine->active_transfers(), 0u);
  EXPECT_EQ(h->live("job.finished").size(), 1u);
}

TEST_F(JobsAgentTest, DeviceDownFailsAfterRetriesOthersSucceed) {
  auto cfg = fast_config();
  cfg.retries = 3;
  cfg.retry_base = 10ms;
  make(cfg);
  auto fleet = agent("fleet", 3);
  auto names = register_all(*fleet, "dev");
  h->add_device("down", fmt::format("127.0.0.1:{}", closed_port()));
  names.push_back("down");
  const std::string sha = h->artifact("fw/app.bin", 200'000, 3);
  const auto id = submit(names);
  ASSERT_TRUE(h->wait_final(id, 60s)) << Harness::describe(h->job(id));
  const auto j = h->stored_job(id);
  EXPECT_EQ(j.state, JobState::failed) << Harness::describe(j);
  const auto& down = Harness::target(j, "down");
  EXPECT_EQ(down.state, TargetState::failed);
  EXPECT_EQ(down.error_code, ErrorCode::connect_failed) << down.error_message;
  EXPECT_EQ(down.attempts, 4);  // 1 + retries
  EXPECT_EQ(h->audit("target.retry", "down").size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& t = Harness::target(j, names[i]);
    EXPECT_EQ(t.state, TargetState::succeeded) << Harness::describe(j);
    EXPECT_EQ(file_sha(std::filesystem::path(fleet->device(i).root) / "app.bin"), sha);
  }
  const auto d = **h->store->get_device("down");
  EXPECT_FALSE(d.online);
  EXPECT_EQ(json::parse(*d.last_result_json)["error"]["name"], "CONNECT_FAILED");
}

TEST_F(JobsAgentTest, WrongKeyIsAuthFailedAndNotRetried) {
  make();
  auto dev = agent("dev");
  h->add_device("impostor-key", dev->device().address(), "a-different-key-0123456789");
  h->artifact("fw/app.bin", 1000);
  const auto id = submit({"impostor-key"});
  ASSERT_TRUE(h->wait_final(id, 30s));
  const auto j = h->stored_job(id);
  EXPECT_EQ(j.state, JobState::failed);
  EXPECT_EQ(j.targets[0].error_code, ErrorCode::auth_failed) << j.targets[0].error_message;
  EXPECT_EQ(j.targets[0].attempts, 1);
  EXPECT_TRUE(h->audit("target.retry").empty());
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(dev->device().root) / "app.bin"));
  EXPECT_TRUE((**h->store->get_device("impostor-key")).online);  // the device answered
}

TEST_F(JobsAgentTest, SecondJobOfTheSameArtifactIsUnchanged) {
  make();
  auto fleet = agent("fleet", 2);
  const auto names = register_all(*fleet, "dev");
  const std::uint64_t size = 300'000;
  const std::string sha = h->artifact("fw/app.bin", size, 5);
  const auto first = submit(names);
  ASSERT_TRUE(h->wait_final(first, 60s));
  ASSERT_EQ(h->stored_job(first).state, JobState::succeeded) << Harness::describe(h->stored_job(first));
  for (const auto& n : names) EXPECT_EQ(finished_data(first, n)["bytes_sent"], size);

  const auto second = submit(names);
  ASSERT_TRUE(h->wait_final(second, 60s));
  const auto j = h->stored_job(second);
  EXPECT_EQ(j.state, JobState::succeeded) << Harness::describe(j);
  for (const auto& n : names) {
    const auto& t = Harness::target(j, n);
    EXPECT_TRUE(t.unchanged) << n;
    EXPECT_EQ(t.bytes, size);
    const auto fd = finished_data(second, n);
    EXPECT_EQ(fd["bytes_sent"], 0) << fd.dump();
    EXPECT_EQ(fd["unchanged"], true);
  }
  const std::string text = h->metrics.render(0, 0, 0);
  EXPECT_NE(text.find("otter_transfers_total{outcome=\"unchanged\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find(fmt::format("otter_transfer_bytes_total {}\n", 2 * size)), std::string::npos) << text;

  // Other content under the same name is pushed again.
  h->artifact("fw/app2.bin", size, 6);
  const auto third = submit(names, "fw/app2.bin", "app.bin");
  ASSERT_TRUE(h->wait_final(third, 60s));
  const auto j3 = h->stored_job(third);
  EXPECT_EQ(j3.state, JobState::succeeded);
  for (const auto& t : j3.targets) EXPECT_FALSE(t.unchanged);
  EXPECT_NE(file_sha(std::filesystem::path(fleet->device(0).root) / "app.bin"), sha);
}

TEST_F(JobsAgentTest, CancelWhileRunning) {
  auto cfg = fast_config();
  cfg.concurrency = 1;
  make(cfg);
  auto fleet = agent("fleet", 2, {"--rate", "262144"});
  const auto names = register_all(*fleet, "slow");
  h->artifact("fw/big.bin", 8u << 20, 9);
  const auto id = submit(names, "fw/big.bin");
  // Running, with bytes acknowledged by the device.
  ASSERT_TRUE(h->run_until([&] { return h->job(id).targets[0].bytes > 0; }, 30s)) << Harness::describe(h->job(id));
  EXPECT_EQ(h->engine->active_transfers(), 1u);
  auto r = h->engine->cancel(id);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->cancel_requested);
  ASSERT_TRUE(h->wait_final(id, 15s)) << Harness::describe(h->job(id));
  const auto j = h->stored_job(id);
  EXPECT_EQ(j.state, JobState::canceled) << Harness::describe(j);
  EXPECT_EQ(j.targets[0].state, TargetState::canceled);
  EXPECT_EQ(j.targets[0].attempts, 1);
  EXPECT_LT(j.targets[0].bytes, j.targets[0].total);
  EXPECT_EQ(j.targets[1].state, TargetState::canceled);
  EXPECT_EQ(j.targets[1].attempts, 0);
  EXPECT_EQ(h->engine->active_transfers(), 0u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(fleet->device(i).root) / "big.bin"));
  }
}

TEST_F(JobsAgentTest, RetryResumesWhereTheDeviceStopped) {
  auto cfg = fast_config();
  cfg.retries = 10;
  cfg.retry_base = 100ms;
  make(cfg);
  auto dev = agent("dev", 0, {"--rate", "1048576"});
  const auto ep = dev->device();
  h->add_device("dev", ep.address());
  const std::uint64_t size = 6u << 20;
  const std::string sha = h->artifact("fw/app.bin", size, 11);
  const auto id = submit({"dev"});
  ASSERT_TRUE(h->run_until([&] { return h->job(id).targets[0].bytes >= (1u << 20); }, 30s))
      << Harness::describe(h->job(id));

  dev->process().kill();  // the device dies mid-transfer (SIGKILL: no goodbye)
  dev.reset();
  // The engine sees the connection go and backs off; the device comes back on the same port and root.
  ASSERT_TRUE(h->run_until([&] { return h->job(id).targets[0].error_code.has_value(); }, 30s));
  auto back = agent("dev", 0, {}, fmt::format("127.0.0.1:{}", ep.port));
  ASSERT_EQ(back->device().root, ep.root);

  ASSERT_TRUE(h->wait_final(id, 60s)) << Harness::describe(h->job(id));
  const auto j = h->stored_job(id);
  EXPECT_EQ(j.state, JobState::succeeded) << Harness::describe(j);
  EXPECT_GE(j.targets[0].attempts, 2);
  const auto fd = finished_data(id, "dev");
  ASSERT_TRUE(fd.is_object());
  const auto resumed = fd["resume_offset"].get<std::uint64_t>();
  const auto sent = fd["bytes_sent"].get<std::uint64_t>();
  EXPECT_GT(resumed, 0u) << fd.dump();
  EXPECT_LT(sent, size) << fd.dump();
  EXPECT_EQ(resumed + sent, size) << fd.dump();
  EXPECT_EQ(file_sha(std::filesystem::path(ep.root) / "app.bin"), sha);
  EXPECT_GE(h->audit("target.retry", "dev").size(), 1u);
}

TEST_F(JobsAgentTest, RecoveryAfterTheEngineStoppedMidRun) {
  auto cfg = fast_config();
  cfg.concurrency = 2;
  cfg.retries = 5;
  cfg.retry_base = 50ms;
  make(cfg);
  auto fleet = agent("fleet", 4, {"--rate", "2097152"});
  const auto names = register_all(*fleet, "dev");
  const std::uint64_t size = 3u << 20;
  const std::string sha = h->artifact("fw/app.bin", size, 13);
  const auto a = submit(names);
  const auto b = submit({names[0], names[1]}, "fw/app.bin", "copy.bin");
  ASSERT_TRUE(h->run_until(
      [&] {
        for (const auto& t : h->job(a).targets) {
          if (t.bytes > 0) return true;
        }
        return false;
      },
      30s));
  h->engine.reset();  // stopped mid-run: nothing more is persisted

  const auto sa = h->stored_job(a);
  EXPECT_FALSE(is_final(sa.state));
  int running = 0;
  for (const auto& t : sa.targets) running += t.state == TargetState::running ? 1 : 0;
  EXPECT_GE(running, 1) << Harness::describe(sa);
  EXPECT_FALSE(is_final(h->stored_job(b).state));

  h->start_engine();
  ASSERT_TRUE(h->engine->recover());
  ASSERT_TRUE(h->wait_final(a, 90s)) << Harness::describe(h->job(a));
  ASSERT_TRUE(h->wait_final(b, 90s)) << Harness::describe(h->job(b));
  const auto fa = h->stored_job(a);
  const auto fb = h->stored_job(b);
  EXPECT_EQ(fa.state, JobState::succeeded) << Harness::describe(fa);
  EXPECT_EQ(fb.state, JobState::succeeded) << Harness::describe(fb);
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto& t = Harness::target(fa, names[i]);
    const auto& before = Harness::target(sa, names[i]);
    if (before.state == TargetState::running) {
      EXPECT_GE(t.attempts, 2) << names[i];  // the count was kept
    }
    EXPECT_EQ(file_sha(std::filesystem::path(fleet->device(i).root) / "app.bin"), sha) << names[i];
  }
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(file_sha(std::filesystem::path(fleet->device(i).root) / "copy.bin"), sha);
  }
  auto unfinished = h->store->unfinished_jobs();
  ASSERT_TRUE(unfinished);
  EXPECT_TRUE(unfinished->empty());
}

TEST_F(JobsAgentTest, Probe) {
  make();
  auto dev = agent("dev");
  h->add_device("ok", dev->device().address());
  h->add_device("badkey", dev->device().address(), "a-different-key-0123456789");
  h->add_device("down", fmt::format("127.0.0.1:{}", closed_port()));
  std::map<std::string, Result<ProbeResult>> got;
  for (const char* n : {"ok", "badkey", "down"}) {
    h->engine->probe(n, [&got, name = std::string(n)](Result<ProbeResult> r) { got.emplace(name, std::move(r)); });
  }
  ASSERT_TRUE(h->run_until([&] { return got.size() == 3; }, 30s));
  ASSERT_TRUE(got.at("ok"));
  const auto& ok = *got.at("ok");
  EXPECT_TRUE(ok.online);
  EXPECT_FALSE(ok.error.has_value()) << ok.error->to_string();
  EXPECT_EQ(ok.device_id, dev->device().id);
  EXPECT_NE(ok.caps & 0x0001, 0);  // FILE
  EXPECT_NE(ok.caps & 0x0008, 0);  // STAT
  EXPECT_GT(ok.free, 0u);
  EXPECT_FALSE(ok.fw_state.empty());
  ASSERT_TRUE(got.at("badkey"));
  EXPECT_TRUE(got.at("badkey")->online);
  ASSERT_TRUE(got.at("badkey")->error.has_value());
  EXPECT_EQ(got.at("badkey")->error->code, ErrorCode::auth_failed);
  ASSERT_TRUE(got.at("down"));
  EXPECT_FALSE(got.at("down")->online);
  ASSERT_TRUE(got.at("down")->error.has_value());
  EXPECT_EQ(got.at("down")->error->code, ErrorCode::connect_failed);
  EXPECT_TRUE((**h->store->get_device("ok")).online);
  EXPECT_FALSE((**h->store->get_device("down")).online);
  // Nothing was written by the probe.
  for (const auto& entry : otter::test::list_tree(dev->device().root)) {
    EXPECT_EQ(entry.rfind(".otter", 0), 0u) << entry;
  }
}

}  // namespace
}  // namespace otter::server::test
