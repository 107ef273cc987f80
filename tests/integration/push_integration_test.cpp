// End to end: the real `otter` CLI against a real `otter-agent`, both as processes, on 127.0.0.1 with ephemeral
// ports. Every test starts its own agent on a fresh root inside its own temporary directory, so it can check that
// nothing appeared outside the root.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cli_test_util.hpp"
#include "fake_device.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/fault_proxy.hpp"
#include "otter/test/files.hpp"
#include "otter/test/tcp.hpp"
#include "otter/test/temp_dir.hpp"

namespace otter::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kKey = "integration-key-0123456789";

class Integration : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = write_key_file(dir_ / "key", kKey);
    root_ = dir_ / "root";
    fs::create_directories(root_);
    fs::create_directories(dir_ / "src");
  }

  void start_agent(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {agent_bin(),    "--listen",       "127.0.0.1:0", "--root",
                                     root_.string(), "--key-file",     key_,          "--name",
                                     "dev-1",        "--idle-timeout", "10"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    agent_ = std::make_unique<AgentProcess>(argv);
    to_ = agent_->device().address();
  }

  /// `otter push FILE --to AGENT --key-file KEY ARGS... --json`
  OtterRun push_json(const fs::path& file, std::vector<std::string> args, const std::string& to = "") {
    std::vector<std::string> argv = {"push", file.string(), "--to", to.empty() ? to_ : to, "--key-file", key_};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--json");
    return run_otter(argv);
  }
  OtterRun stat_json(const std::string& name) {
    return run_otter({"stat", name, "--to", to_, "--key-file", key_, "--json"});
  }

  /// The whole temporary directory (root, key, sources) minus the agent's private .otter/ area.
  TreeSnapshot snapshot() const {
    TreeSnapshot s = snapshot_tree(dir_.path());
    std::erase_if(s, [](const auto& kv) { return kv.first.rfind("root/.otter", 0) == 0; });
    return s;
  }

  fs::path source(const std::string& rel, std::uint64_t size, std::uint64_t seed) {
    const fs::path p = dir_ / "src" / rel;
    write_random_file(p, size, seed);
    return p;
  }

  TempDir dir_{"otter-integration"};
  std::string key_;
  fs::path root_;
  std::unique_ptr<AgentProcess> agent_;
  std::string to_;
};

TEST_F(Integration, PushesRandomFilesOfEverySize) {
  start_agent();
  struct Case {
    const char* name;
    std::uint64_t size;
  };
  for (const Case c : {Case{"empty.bin", 0}, Case{"one.bin", 1}, Case{"dir/one-mib.bin", 1ull << 20},
                       Case{"deep/er/hundred-mib.bin", 100ull << 20}}) {
    SCOPED_TRACE(c.name);
    const fs::path src = source(fs::path(c.name).filename().string(), c.size, c.size + 1);
    const std::string sha = sha256_file_hex(src);

    auto r = stat_json(c.name);
    ASSERT_EQ(r.exit_code, 0) << r.describe;
    auto j = r.json();
    EXPECT_EQ(j["ok"], true) << r.describe;
    EXPECT_EQ(j["exists"], false) << r.describe;
    EXPECT_EQ(j["device"], "dev-1") << r.describe;

    r = push_json(src, {"--as", c.name});
    ASSERT_EQ(r.exit_code, 0) << r.describe << agent_->output();
    j = r.json();
    EXPECT_EQ(j["ok"], true);
    EXPECT_EQ(j["device"], "dev-1");
    EXPECT_EQ(j["name"], c.name);
    EXPECT_EQ(j["size"], c.size);
    EXPECT_EQ(j["sha256"], sha);
    EXPECT_EQ(j["resumed_from"], 0);
    EXPECT_EQ(j["bytes_sent"], c.size);
    EXPECT_EQ(j["rebooting"], false);
    // No --sha256: the file is read once and its SHA-256 goes after the data (protocol.md 3.10).
    EXPECT_EQ(j["digest_last"], true) << r.describe;

    ASSERT_TRUE(fs::is_regular_file(root_ / c.name));
    EXPECT_EQ(fs::file_size(root_ / c.name), c.size);
    EXPECT_EQ(sha256_file_hex(root_ / c.name), sha);

    r = stat_json(c.name);
    ASSERT_EQ(r.exit_code, 0) << r.describe;
    j = r.json();
    EXPECT_EQ(j["exists"], true) << r.describe;
    EXPECT_EQ(j["size"], c.size) << r.describe;
    EXPECT_EQ(j["sha256"], sha) << r.describe;
  }
}

TEST_F(Integration, KnownHashGoesInTheRequest) {
  start_agent();
  const fs::path src = source("known.bin", 300000, 7);
  const std::string sha = sha256_file_hex(src);
  auto r = push_json(src, {"--sha256", sha});
  ASSERT_EQ(r.exit_code, 0) << r.describe << agent_->output();
  auto j = r.json();
  EXPECT_EQ(j["digest_last"], false) << r.describe;
  EXPECT_EQ(j["sha256"], sha);
  EXPECT_EQ(sha256_file_hex(root_ / "known.bin"), sha);
  r = push_json(src, {"--as", "again.bin", "--skip-unchanged"});  // needs the hash first, too
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.json()["digest_last"], false) << r.describe;
  EXPECT_EQ(sha256_file_hex(root_ / "again.bin"), sha);
}

TEST_F(Integration, TextOutputAndReplacingAFile) {
  start_agent();
  const fs::path src = dir_ / "src" / "greeting.txt";
  write_file(src, "hello");
  auto r = run_otter({"push", src.string(), "--to", to_, "--key-file", key_});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.out.rfind("ok: greeting.txt -> dev-1 (5 B, sha256 2cf24dba\u2026, resumed from 0, ", 0), 0u)
      << r.describe;
  EXPECT_EQ(read_file(root_ / "greeting.txt"), "hello");

  write_file(src, "hello again");
  r = run_otter({"push", src.string(), "--to", to_, "--key-file", key_, "--kind", "firmware", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_TRUE(r.out.empty()) << r.describe;
  EXPECT_EQ(read_file(root_ / "greeting.txt"), "hello again");

  r = run_otter({"stat", "greeting.txt", "--to", to_, "--key-file", key_});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.out, "dev-1: greeting.txt: 11 B (11 B), sha256 " + sha256_hex("hello again") + "\n");
}

TEST_F(Integration, FirmwareWithRebootAndSkipUnchanged) {
  start_agent();
  const fs::path src = source("fw.bin", 100000, 7);
  auto r = push_json(src, {"--kind", "firmware", "--reboot"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  auto j = r.json();
  EXPECT_EQ(j["kind"], "firmware");
  EXPECT_EQ(j["rebooting"], true) << r.describe;  // the agent advertises REBOOT
  EXPECT_EQ(sha256_file_hex(root_ / "fw.bin"), sha256_file_hex(src));

  r = push_json(src, {"--skip-unchanged"});  // the device holds exactly this: nothing is sent
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  j = r.json();
  EXPECT_EQ(j["unchanged"], true) << r.describe;
  EXPECT_EQ(j["bytes_sent"], 0) << r.describe;
  EXPECT_EQ(j["sha256"], sha256_file_hex(src));

  write_file(src, "changed");
  r = push_json(src, {"--skip-unchanged"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  j = r.json();
  EXPECT_EQ(j["unchanged"], false) << r.describe;
  EXPECT_EQ(j["bytes_sent"], 7) << r.describe;
  EXPECT_EQ(read_file(root_ / "fw.bin"), "changed");
}

TEST_F(Integration, BadNamesAreRefusedAndNothingIsWrittenOutsideTheRoot) {
  start_agent();
  write_file(root_ / "existing.txt", "precious");
  const fs::path src = dir_ / "src" / "payload.txt";
  write_file(src, "payload");
  const bool etc_x_existed = fs::exists("/etc/x");
  const TreeSnapshot before = snapshot();

  const std::vector<std::string> bad = {
      "../x",
      "/etc/x",
      (dir_ / "outside.txt").string(),  // absolute, pointing next to the root
      "a\\b",
      std::string("a\x01") + "b",
      std::string("tab\there"),
      std::string("del\x7f"),
      std::string(300, 'n'),
      "..",
      "a/../../x",
      "a//b",
      "dir/",
      "./x",
      ".otter/x",
      "",
  };
  for (const auto& name : bad) {
    SCOPED_TRACE("--as '" + name + "'");
    const auto r = push_json(src, {"--as", name});
    EXPECT_EQ(r.exit_code, 1) << r.describe;
    expect_json_error(r, 1, "BAD_NAME");
    const auto text = run_otter({"push", src.string(), "--to", to_, "--key-file", key_, "--as", name});
    EXPECT_EQ(text.exit_code, 1) << text.describe;
    EXPECT_EQ(text.err.rfind("error: BAD_NAME (1): ", 0), 0u) << text.describe;
    EXPECT_TRUE(text.out.empty()) << text.describe;
  }
  // 256 bytes is over the limit too; 255 is fine.
  auto r = push_json(src, {"--as", std::string(256, 'm')});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 1, "BAD_NAME");

  EXPECT_EQ(diff_trees(before, snapshot()), "");
  EXPECT_EQ(fs::exists("/etc/x"), etc_x_existed);
  EXPECT_EQ(read_file(root_ / "existing.txt"), "precious");

  r = push_json(src, {"--as", std::string(255, 'm')});
  EXPECT_EQ(r.exit_code, 0) << r.describe;
}

TEST_F(Integration, TooLarge) {
  start_agent({"--max-size", "1K"});
  write_file(root_ / "big.bin", "old");
  const fs::path src = source("big.bin", 2048, 1);
  const TreeSnapshot before = snapshot();
  const auto r = push_json(src, {});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 2, "TOO_LARGE");
  EXPECT_EQ(diff_trees(before, snapshot()), "");
  EXPECT_EQ(read_file(root_ / "big.bin"), "old");
  // At the limit is fine.
  EXPECT_EQ(push_json(source("ok.bin", 1024, 2), {}).exit_code, 0);
}

TEST_F(Integration, ClaimedHashOfOtherContentIsHashMismatchAndTheTargetSurvives) {
  start_agent();
  write_file(root_ / "target.bin", "the old, good version");
  const fs::path src = source("target.bin", 300000, 3);
  const std::string other = sha256_hex("some other content");
  const TreeSnapshot before = snapshot();
  auto r = push_json(src, {"--sha256", other});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 5, "HASH_MISMATCH");
  EXPECT_EQ(diff_trees(before, snapshot()), "");
  EXPECT_EQ(read_file(root_ / "target.bin"), "the old, good version");

  // The failed attempt left nothing to resume from: the next correct push starts at 0.
  r = push_json(src, {});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.json()["resumed_from"], 0);
  EXPECT_EQ(sha256_file_hex(root_ / "target.bin"), sha256_file_hex(src));
}

TEST_F(Integration, WrongKeyIsAuthFailed) {
  start_agent();
  write_file(root_ / "k.txt", "old");
  const std::string wrong = write_key_file(dir_ / "wrong.key", "not-the-device-key-0123");
  const fs::path src = dir_ / "src" / "k.txt";
  write_file(src, "new");
  const TreeSnapshot before = snapshot();
  auto r = run_otter({"push", src.string(), "--to", to_, "--key-file", wrong, "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 4, "AUTH_FAILED");
  r = run_otter({"stat", "k.txt", "--to", to_, "--key-file", wrong, "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 4, "AUTH_FAILED");
  EXPECT_EQ(diff_trees(before, snapshot()), "");
}

TEST_F(Integration, ClosedPortIsConnectFailed) {
  const RefusedPort refused;
  const std::string to = refused.address();
  const fs::path src = dir_ / "src" / "x";
  write_file(src, "x");
  const auto r = push_json(src, {}, to);
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 100, "CONNECT_FAILED");
  const auto j = r.json();
  EXPECT_EQ(j["error"]["message"], "connect to " + to + ": Connection refused") << r.describe;
}

TEST_F(Integration, SomethingThatIsNotOtterIsRefused) {
  FakeDevice::Config cfg;
  cfg.mode = FakeDevice::Mode::garbage;
  FakeDevice garbage(cfg);
  const fs::path src = dir_ / "src" / "x";
  write_file(src, "x");
  const auto r = push_json(src, {}, "127.0.0.1:" + std::to_string(garbage.port()));
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  const auto j = r.json();
  const std::string name = j["error"].value("name", "");
  EXPECT_TRUE(name == "NOT_OTTER_DEVICE" || name == "PROTOCOL") << r.describe;
}

TEST_F(Integration, CutMidTransferThenResume) {
  constexpr std::uint64_t kWindow = 64 * 1024;
  constexpr std::uint64_t kSize = 8ull << 20;
  constexpr std::uint64_t kCut = 3ull << 20;
  start_agent({"--window", std::to_string(kWindow)});
  write_file(root_ / "cut.bin", "old version");
  const fs::path src = source("cut.bin", kSize, 42);
  const std::string sha = sha256_file_hex(src);

  OtterRun first;
  std::uint64_t content_through = 0;
  {
    FaultProxy proxy(agent_->device().port, ProxyFaults::cut(kCut));
    first = push_json(src, {}, "127.0.0.1:" + std::to_string(proxy.port()));
    ASSERT_TRUE(proxy.wait_done(30s));
    EXPECT_TRUE(proxy.cut());
    EXPECT_EQ(proxy.forwarded(), kCut);
    content_through = proxy.data_forwarded();
    // PUSH, then DATA frames: everything but the PUSH frame and the DATA headers is content (the cut may fall
    // inside a header, leaving 1 or 2 of its bytes forwarded).
    const std::uint64_t framing = (3 + 109 + 7) + 3 * proxy.data_frames_forwarded();
    EXPECT_LE(content_through + framing, kCut);
    EXPECT_GE(content_through + framing + 2, kCut);
  }
  EXPECT_EQ(first.exit_code, 1) << first.describe;
  const auto fj = first.json();
  EXPECT_EQ(fj.value("ok", true), false) << first.describe;
  EXPECT_EQ(fj["error"].value("name", ""), "CONNECTION_CLOSED") << first.describe;
  EXPECT_EQ(read_file(root_ / "cut.bin"), "old version");

  // The agent logs the end of each session: once it has, the partial copy is synced and the name unlocked.
  EXPECT_TRUE(agent_->process().wait_for_output("'cut.bin'", 30s, /*from_stderr=*/true)) << agent_->output();

  const auto second = push_json(src, {});
  ASSERT_EQ(second.exit_code, 0) << second.describe << agent_->output();
  const auto j = second.json();
  const std::uint64_t resumed = j.value("resumed_from", std::uint64_t{0});
  EXPECT_GE(resumed, kCut - kWindow) << second.describe;
  EXPECT_LE(resumed, kCut) << second.describe;
  // Exactly: the device keeps every content byte it received, and the proxy counted them.
  EXPECT_EQ(resumed, content_through) << second.describe;
  EXPECT_EQ(j.value("bytes_sent", std::uint64_t{0}), kSize - resumed) << second.describe;
  EXPECT_EQ(j["size"], kSize);
  EXPECT_EQ(j["sha256"], sha);
  EXPECT_EQ(sha256_file_hex(root_ / "cut.bin"), sha);
}

TEST_F(Integration, PartialCopyOfOtherContentIsPushedAgainFromZero) {
  constexpr std::uint64_t kSize = 4ull << 20;
  start_agent({"--window", std::to_string(64 * 1024)});
  const fs::path v1 = source("v1.bin", kSize, 7);
  const fs::path v2 = source("v2.bin", kSize, 8);  // same size, other content, pushed under the same name
  {
    FaultProxy proxy(agent_->device().port, ProxyFaults::cut(1ull << 20));
    const auto first = push_json(v1, {"--as", "same.bin"}, "127.0.0.1:" + std::to_string(proxy.port()));
    ASSERT_TRUE(proxy.wait_done(30s));
    EXPECT_EQ(first.exit_code, 1) << first.describe;
  }
  EXPECT_TRUE(agent_->process().wait_for_output("'same.bin'", 30s, /*from_stderr=*/true)) << agent_->output();

  // The device offers v1's bytes; their digest is not v2's prefix, so otter closes, waits for the device to let go
  // of the name, and pushes again with RESTART on a new connection.
  const auto second = push_json(v2, {"--as", "same.bin"});
  ASSERT_EQ(second.exit_code, 0) << second.describe << agent_->output();
  const auto j = second.json();
  EXPECT_EQ(j.value("resumed_from", std::uint64_t{1}), 0u) << second.describe;
  EXPECT_EQ(j.value("bytes_sent", std::uint64_t{0}), kSize) << second.describe;
  EXPECT_EQ(j.value("digest_last", false), true) << second.describe;
  EXPECT_EQ(j.value("restarted", false), true) << second.describe;
  EXPECT_EQ(sha256_file_hex(root_ / "same.bin"), sha256_file_hex(v2));
}

}  // namespace
}  // namespace otter::test
