// Fault injection through linkem (issue 8): a pusher -> linkem (a process) -> a device (a process).
//
//   CutPush.*     rounds of (pushes by the push client library, the engine of `otter push`, in this process):
//                 push a new 256 KiB file through a linkem that cuts at a random offset (seeded), check
//                 that the device holds exactly the old or the new file (SHA-256) and nothing partial under the
//                 target name, then retry through the same linkem (its second connection gets no fault) and check
//                 that the retry completes and sends only the missing bytes. Against otter-agent and the
//                 MicroPython receiver (firmware/micropython, run by CPython as a process on a real socket).
//   Stall.*       linkem stalls the link mid-push: the agent's idle timeout and the pusher's timeout both fire within
//                 their configured times, and the agent's open fds return to their count before the push.
//
// Environment: OTTER_FAULT_SEED (base seed, default 20261127), OTTER_FAULT_ROUNDS (agent rounds, default 200),
// OTTER_FAULT_MPY_ROUNDS (MicroPython rounds, default 200). A failure names the round and its linkem seed; rerun
// with OTTER_FAULT_SEED to reproduce.
#include <sys/types.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_test_util.hpp"
#include "linkem_process.hpp"
#include "otter/common/push_client.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/files.hpp"
#include "otter/test/temp_dir.hpp"

namespace otter::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kKey = "fault-injection-key-0123456789";
constexpr std::size_t kSize = 256 * 1024;
constexpr const char* kName = "fw.bin";

std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

std::size_t count_fds(pid_t pid) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
  return n;
}

/// Entries below root outside the device's private .otter/ area (and the MicroPython config file).
std::vector<std::string> visible_entries(const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& e : list_tree(root))
    if (e.rfind(".otter", 0) != 0 && e != "otter.json") out.push_back(e);
  return out;
}

/// A device under test: its address and root.
struct Device {
  std::string address;
  fs::path root;
  std::unique_ptr<AgentProcess> agent;
  std::unique_ptr<Process> python;
  [[nodiscard]] std::string output() const { return agent ? agent->output() : python ? python->output() : ""; }
};

class CutPush : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = write_key_file(dir_ / "key", kKey);
    root_ = dir_.mkdir("root");
    dir_.mkdir("src");
  }

  void start_agent() {
    dev_.agent = std::make_unique<AgentProcess>(
        std::vector<std::string>{agent_bin(), "--listen", "127.0.0.1:0", "--root", root_.string(), "--key-file", key_,
                                 "--name", "dev-cut", "--idle-timeout", "10", "--log-level", "warn"});
    dev_.address = dev_.agent->device().address();
    dev_.root = root_;
  }

  void start_micropython() {
    const std::string code = "import sys; sys.path.insert(0, '" + std::string(OTTER_SOURCE_DIR) +
                             "/firmware/micropython'); import otter; otter.serve(key='" + kKey +
                             "', port=0, host='127.0.0.1', root='" + root_.string() +
                             "', name='mpy-cut', idle_timeout=10)";
    dev_.python = std::make_unique<Process>(std::vector<std::string>{"python3", "-u", "-c", code});
    // "otter: mpy-cut listening on 127.0.0.1:PORT"
    auto line = dev_.python->read_line_until(
        [](const std::string& l) { return l.find("mpy-cut listening on 127.0.0.1:") != std::string::npos; }, 30s);
    ASSERT_TRUE(line) << dev_.python->output();
    dev_.address = line->substr(line->rfind(' ') + 1);
    dev_.root = root_;
  }

  fs::path source(std::uint64_t seed) {
    const fs::path p = dir_ / "src" / ("v" + std::to_string(seed) + ".bin");
    if (!fs::exists(p)) write_random_file(p, kSize, seed);
    return p;
  }

  /// One push of SRC as fw.bin to "127.0.0.1:PORT" through the push client library (the engine of `otter push`),
  /// in this process: 400 process starts would dominate the test's time, under ASan most of all. On BUSY (the device
  /// has not yet noticed the cut connection) it asks again, a bounded number of times.
  struct PushRun {
    Result<PushOutcome> result;
    [[nodiscard]] bool ok() const { return result.has_value(); }
    [[nodiscard]] std::string describe() const { return ok() ? "push ok" : "push: " + result.error().to_string(); }
  };
  PushRun push(const fs::path& src, const std::string& to, int* busy = nullptr) {
    PushOptions o;
    const auto colon = to.rfind(':');
    o.host = to.substr(0, colon);
    o.port = static_cast<std::uint16_t>(std::stoul(to.substr(colon + 1)));
    o.key = kKey;
    o.name = kName;
    o.path = src.string();
    o.connect_timeout = 10s;
    o.idle_timeout = 20s;
    for (int attempt = 0;; ++attempt) {
      PushRun r{otter::push(o)};
      if (!r.ok() && r.result.error().code == ErrorCode::busy && attempt < 50) {
        if (busy != nullptr) ++*busy;
        continue;
      }
      return r;
    }
  }

  void run_rounds(std::uint64_t rounds) {
    const std::uint64_t base = env_u64("OTTER_FAULT_SEED", 20261127);
    // The old content, pushed straight to the device.
    fs::path old_src = source(base);
    auto r = push(old_src, dev_.address);
    ASSERT_TRUE(r.ok()) << r.describe() << dev_.output();
    std::string old_sha = sha256_file_hex(old_src);

    // Calibration: one full push through a fault-free linkem gives the wire bytes of a push each way.
    std::uint64_t up_total = 0;
    std::uint64_t down_total = 0;
    {
      fs::path src = source(base + 1);
      LinkemProcess link({"--to", dev_.address});
      r = push(src, link.address());
      ASSERT_TRUE(r.ok()) << r.describe() << dev_.output();
      auto closed = link.wait_closed();
      ASSERT_TRUE(closed) << link.output();
      up_total = closed->up;
      down_total = closed->down;
      ASSERT_GT(up_total, kSize);
      old_src = src;
      old_sha = sha256_file_hex(src);
    }

    std::uint64_t cuts = 0, uncut = 0, held_new = 0, resumed_rounds = 0, resumed_bytes = 0, busy = 0;
    for (std::uint64_t i = 0; i < rounds; ++i) {
      const std::uint64_t seed = base + 1000 + i;
      const bool down = i % 4 == 3;  // every 4th round counts the device's answers: the DONE may be lost
      SCOPED_TRACE("round " + std::to_string(i) + ", linkem --seed " + std::to_string(seed) + " --direction " +
                   (down ? "down" : "up") + " (OTTER_FAULT_SEED=" + std::to_string(base) + ")");
      const fs::path src = source(base + 2 + i);
      const std::string new_sha = sha256_file_hex(src);
      LinkemProcess link({"--to", dev_.address, "--cut-random", "--cut-within",
                          std::to_string((down ? down_total : up_total) - 1), "--seed", std::to_string(seed),
                          "--direction", down ? "down" : "up"});
      auto cut_run = push(src, link.address());
      auto closed = link.wait_closed();
      ASSERT_TRUE(closed) << link.output();
      if (!closed->cut) {
        // Only possible when counting the device's answers: this session's answers were shorter than the
        // calibration's (fewer ACKs) and ended before the offset. Then the push went through.
        ASSERT_TRUE(down) << closed->line << "\n" << cut_run.describe();
        ASSERT_TRUE(cut_run.ok()) << cut_run.describe();
        ASSERT_EQ(sha256_file_hex(dev_.root / kName), new_sha);
        ++uncut;
        old_sha = new_sha;
        continue;
      }
      ++cuts;
      EXPECT_FALSE(cut_run.ok()) << "the pusher must not report success after a cut";

      // The device holds the old or the new file, never a partial one, and nothing else under the target name.
      ASSERT_TRUE(fs::is_regular_file(dev_.root / kName));
      const std::string held = sha256_file_hex(dev_.root / kName);
      ASSERT_TRUE(held == old_sha || held == new_sha)
          << "partial or foreign content after the cut at " << closed->line;
      if (held == new_sha) ++held_new;
      if (!down) {
        EXPECT_EQ(held, old_sha) << "the new content cannot be complete before all its bytes went through";
      }
      EXPECT_EQ(visible_entries(dev_.root), std::vector<std::string>{kName});

      // The retry, through the same linkem (its second connection gets no fault).
      int busy_now = 0;
      auto retry = push(src, link.address(), &busy_now);
      busy += static_cast<std::uint64_t>(busy_now);
      ASSERT_TRUE(retry.ok()) << retry.describe() << dev_.output();
      const std::uint64_t resumed = retry.result->resume_offset;
      const std::uint64_t sent = retry.result->bytes_sent;
      EXPECT_EQ(retry.result->total, kSize);
      EXPECT_EQ(to_hex(retry.result->sha256.data(), retry.result->sha256.size()), new_sha) << "the device's DONE";
      EXPECT_EQ(sent, kSize - resumed);
      if (!down) {
        // The device cannot hold more content than linkem let through (the wire count includes frame headers).
        EXPECT_LE(resumed, *closed->at) << closed->line;
        // A cut well into the data leaves a partial copy to resume from.
        if (*closed->at >= 64 * 1024) {
          EXPECT_GT(resumed, 0u) << closed->line;
        }
      }
      if (resumed > 0) ++resumed_rounds;
      resumed_bytes += resumed;
      EXPECT_EQ(sha256_file_hex(dev_.root / kName), new_sha);
      EXPECT_EQ(visible_entries(dev_.root), std::vector<std::string>{kName});
      // On the wire, the retry carried the missing content plus framing only.
      for (;;) {
        auto c = link.wait_closed();
        ASSERT_TRUE(c) << link.output();
        if (c->cut) continue;             // never: only the first connection gets the fault
        if (c->up < sent + 64) continue;  // a BUSY attempt
        EXPECT_LE(c->up, sent + 2048) << c->line;
        break;
      }
      old_sha = new_sha;
      if (HasFatalFailure()) return;
    }
    EXPECT_GE(cuts, rounds * 9 / 10) << uncut << " rounds were not cut";
    std::cout << "[ fault    ] " << cuts << " cuts (" << uncut << " rounds ended before the offset), " << held_new
              << " left the new file (DONE lost), " << resumed_rounds << " retries resumed (" << resumed_bytes
              << " bytes not re-sent), " << busy << " BUSY answers before a retry; push = " << up_total << " B up, "
              << down_total << " B down\n";
  }

  TempDir dir_{"otter-fault"};
  std::string key_;
  fs::path root_;
  Device dev_;
};

TEST_F(CutPush, AgentSurvivesRandomCutsAndResumes) {
  start_agent();
  run_rounds(env_u64("OTTER_FAULT_ROUNDS", 200));
}

TEST_F(CutPush, MicroPythonReceiverSurvivesRandomCutsAndResumes) {
  start_micropython();
  if (HasFatalFailure()) return;
  run_rounds(env_u64("OTTER_FAULT_MPY_ROUNDS", 200));
}

double since(Clock::time_point t0, Clock::time_point t1) { return std::chrono::duration<double>(t1 - t0).count(); }

TEST(Stall, BothSidesTimeOutAndTheAgentReleasesItsFds) {
  TempDir dir("otter-stall");
  const std::string key = write_key_file(dir / "key", kKey);
  const fs::path root = dir.mkdir("root");
  AgentProcess agent({agent_bin(), "--listen", "127.0.0.1:0", "--root", root.string(), "--key-file", key, "--name",
                      "dev-stall", "--idle-timeout", "1"});
  const fs::path src = dir / "big.bin";
  write_random_file(src, kSize, 99);
  // Settle the agent (first connection served, logger and files open) before counting its fds.
  auto warm = run_otter({"stat", "x", "--to", agent.device().address(), "--key-file", key, "--json"});
  ASSERT_EQ(warm.exit_code, 0) << warm.describe;
  // The agent logs a session's end after closing its socket.
  ASSERT_TRUE(agent.process().wait_for_output("stat result OK", 10s, true)) << agent.output();
  const std::size_t fds_before = count_fds(agent.process().pid());

  LinkemProcess link({"--to", agent.device().address(), "--stall-after", "60000", "--stall-for", "5s"});
  Process pusher(
      {otter_bin(), "push", src.string(), "--to", link.address(), "--key-file", key, "--json", "--timeout", "2"});
  auto stall = link.wait_line("stall at=60000");
  const auto t_stall = Clock::now();
  ASSERT_TRUE(stall) << link.output();

  // The agent answers ERROR TIMEOUT and half-closes when its idle timeout (1 s) fires: linkem reads its EOF.
  auto agent_eof = link.wait_line("eof from target", 10s);
  const auto t_agent = Clock::now();
  ASSERT_TRUE(agent_eof) << link.output() << agent.output();
  EXPECT_GE(since(t_stall, t_agent), 0.75);
  EXPECT_LE(since(t_stall, t_agent), 2.0);

  // The pusher gives up after its --timeout (2 s) of silence.
  const auto rc = pusher.wait(20s);
  const auto t_pusher = Clock::now();
  ASSERT_TRUE(rc) << pusher.output();
  EXPECT_NE(*rc, 0);
  EXPECT_GE(since(t_stall, t_pusher), 1.75);
  EXPECT_LE(since(t_stall, t_pusher), 3.5);
  const auto j = nlohmann::json::parse(pusher.stdout_text(), nullptr, false);
  ASSERT_TRUE(j.is_object()) << pusher.output();
  EXPECT_EQ(j["error"]["name"], "TIMEOUT") << pusher.output();

  // The agent logs the session's end after closing its socket; its fd count is back to where it was.
  ASSERT_TRUE(agent.process().wait_for_output("result TIMEOUT", 10s, true)) << agent.output();
  std::size_t fds_after = count_fds(agent.process().pid());
  EXPECT_EQ(fds_after, fds_before) << agent.output();
  std::cout << "[ stall    ] agent timed out " << since(t_stall, t_agent) << " s after the stall (--idle-timeout 1), "
            << "pusher " << since(t_stall, t_pusher) << " s (--timeout 2); agent fds " << fds_before << " -> "
            << fds_after << "\n";
  EXPECT_FALSE(fs::exists(root / "big.bin"));
}

}  // namespace
}  // namespace otter::test
