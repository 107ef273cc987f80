// The real otter-agent process on 127.0.0.1 (ephemeral ports), driven by hand-built protocol frames.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/files.hpp"
#include "otter/test/process.hpp"
#include "otter/test/temp_dir.hpp"
#include "wire.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using otter::ErrorCode;
using otter::test::AgentEndpoint;
using otter::test::AgentProcess;
using otter::test::make_frame;
using otter::test::Process;
using otter::test::read_file;
using otter::test::TempDir;
using otter::test::write_file;
using otter::test::wire::Client;
using otter::test::wire::push_of;
using otter::test::wire::PushSpec;

namespace {

const std::string kKey = "otter-agent-test-key-0123456789";

class AgentTest : public ::testing::Test {
 protected:
  TempDir base{"otter-agent-test"};
  fs::path root = base / "root";
  std::string key_file;
  std::unique_ptr<AgentProcess> agent;

  void SetUp() override {
    key_file = otter::test::write_key_file(base / "key", kKey);
    write_file(base / "outside/canary", "canary");
  }

  void TearDown() override {
    if (!agent) return;
    // Every test ends with a clean shutdown: SIGTERM -> exit 0 (and, under ASan, no leak report).
    EXPECT_EQ(agent->stop(), 0) << agent->output();
  }

  std::vector<std::string> argv(const std::vector<std::string>& extra) const {
    std::vector<std::string> a{otter::test::agent_bin(),
                               "--listen",
                               "127.0.0.1:0",
                               "--root",
                               root.string(),
                               "--key-file",
                               key_file,
                               "--name",
                               "test-dev",
                               "--window",
                               "64K"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  void start(const std::vector<std::string>& extra = {}, std::size_t devices = 1) {
    agent = std::make_unique<AgentProcess>(argv(extra), devices);
  }

  const AgentEndpoint& ep(std::size_t i = 0) const { return agent->device(i); }

  /// The whole temp dir, minus the agent's own (empty) bookkeeping directories.
  otter::test::TreeSnapshot snapshot() const {
    auto s = otter::test::snapshot_tree(base.path());
    for (const char* d : {"root/.otter", "root/.otter/part"}) {
      auto it = s.find(d);
      if (it != s.end() && it->second == "dir") s.erase(it);
    }
    return s;
  }

  std::vector<std::string> partial_files() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root / ".otter/part", ec)) out.push_back(e.path().filename());
    return out;
  }

  /// Waits (bounded) until the agent logged the end of a session with this result.
  void wait_for_log(const std::string& needle) {
    ASSERT_TRUE(agent->process().wait_for_output(needle, 10s, /*from_stderr=*/true))
        << "no '" << needle << "' in the log\n"
        << agent->output();
  }
};

TEST_F(AgentTest, HelloFieldsAndFreshNonce) {
  start({"--max-size", "2M"});
  Client a(ep(), kKey);
  Client b(ep(), kKey);
  const auto& h = a.read_hello();
  EXPECT_EQ(h.version, 1);
  using namespace otter::core;
  EXPECT_EQ(h.caps & (caps::file | caps::resume | caps::stat | caps::reboot),
            caps::file | caps::resume | caps::stat | caps::reboot);
  EXPECT_EQ(h.window, 65536u);
  EXPECT_EQ(h.max_size, 2u << 20);
  EXPECT_GT(h.free, 0u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(h.id.data), h.id.size), "test-dev");
  EXPECT_EQ(a.hello_payload().size(), kHelloFixed + 8);
  EXPECT_EQ(a.hello_payload().substr(0, 4), "OTTR");
  b.read_hello();
  EXPECT_NE(otter::test::to_hex(a.hello().nonce, 32), otter::test::to_hex(b.hello().nonce, 32));
  EXPECT_NE(otter::test::to_hex(a.hello().nonce, 32), std::string(64, '0'));
  EXPECT_EQ(ep().id, "test-dev");
  EXPECT_EQ(ep().host, "127.0.0.1");
  EXPECT_EQ(ep().root, root.string());
}

TEST_F(AgentTest, PushSmallFileLandsAndStatReportsIt) {
  start();
  const std::string content = "hello, otter\n";
  const auto spec = push_of("dir/sub/greeting.txt", content);
  {
    Client c(ep(), kKey);
    c.push(spec, content);
    EXPECT_EQ(c.last_ack(), content.size());
    EXPECT_TRUE(c.tcp().wait_closed(10s));
  }
  EXPECT_EQ(read_file(root / "dir/sub/greeting.txt"), content);
  EXPECT_TRUE(partial_files().empty());
  {
    Client c(ep(), kKey);
    c.read_hello();
    c.send(c.stat_frame("dir/sub/greeting.txt"));
    const auto st = c.expect_stat_result();
    EXPECT_EQ(st.exists, 1);
    EXPECT_EQ(st.size, content.size());
    EXPECT_EQ(otter::test::to_hex(st.sha256, 32), otter::test::sha256_hex(content));
  }
  {
    Client c(ep(), kKey);
    c.read_hello();
    c.send(c.stat_frame("missing.txt"));
    const auto st = c.expect_stat_result();
    EXPECT_EQ(st.exists, 0);
  }
}

TEST_F(AgentTest, LargerPushWithFlowControlAndReplace) {
  start();
  write_file(root / "big.bin", "old");
  // 1 MiB through a 64 KiB window: the client honours the window using ACKs.
  const auto content = otter::test::random_bytes(1 << 20, 42);
  const auto spec = push_of("big.bin", content);
  Client c(ep(), kKey);
  c.read_hello();
  c.send(c.push_frame(spec));
  ASSERT_EQ(c.expect_ready(), 0u);
  std::uint64_t sent = 0;
  std::uint64_t acked = 0;
  while (sent < content.size()) {
    while (sent < content.size() && sent - acked < 65536) {
      const std::size_t n = std::min<std::size_t>(16384, content.size() - sent);
      c.send(make_frame(0x12, std::string_view(content).substr(sent, n)));
      sent += n;
    }
    if (sent == content.size()) break;
    auto f = c.frame(10s);
    ASSERT_TRUE(f);
    ASSERT_EQ(f->type, 0x03) << "expected ACK";
    auto a = otter::core::decode_ack(otter::test::wire::bv(f->payload));
    ASSERT_TRUE(a);
    ASSERT_GE(*a, acked);
    acked = *a;
  }
  const auto done = c.expect_done(spec);
  EXPECT_EQ(done.rebooting, 0);
  EXPECT_EQ(otter::test::sha256_file_hex(root / "big.bin"), otter::test::sha256_hex(content));
}

TEST_F(AgentTest, BadNamesRefusedNothingWrittenOutsideRoot) {
  write_file(root / "victim.txt", "precious");
  start();
  const bool etc_x_existed = fs::exists("/etc/x");
  const auto before = snapshot();
  const std::vector<std::string> names = {
      "../x",
      "/etc/x",
      "a\\b",
      std::string("a\0b", 3),
      "a\x01"
      "b",
      "tab\there",
      "del\x7f",
      std::string(300, 'a'),
      ".otter/x",
      ".otter",
      "a//b",
      "a/./b",
      "a/../../x",
      "dir/",
      "",
  };
  for (const auto& name : names) {
    Client c(ep(), kKey);
    c.read_hello();
    c.send(c.push_frame(push_of(name, "evil")));
    const auto e = c.expect_error();
    EXPECT_EQ(e.code, ErrorCode::bad_name)
        << "name '" << name << "': " << otter::error_name(e.code) << " " << e.message;
  }
  EXPECT_EQ(otter::test::diff_trees(before, snapshot()), "");
  EXPECT_EQ(read_file(root / "victim.txt"), "precious");
  if (!etc_x_existed) {
    EXPECT_FALSE(fs::exists("/etc/x"));
  }
}

TEST_F(AgentTest, SymlinkInRootIsNotFollowed) {
  fs::create_directories(root);
  fs::create_directory_symlink(base / "outside", root / "sub");
  start();
  const auto before = snapshot();
  Client c(ep(), kKey);
  c.read_hello();
  c.send(c.push_frame(push_of("sub/x", "evil")));
  EXPECT_EQ(c.expect_error().code, ErrorCode::bad_name);
  EXPECT_EQ(otter::test::diff_trees(before, snapshot()), "");
}

TEST_F(AgentTest, SizeBeyondMaxSizeIsTooLarge) {
  start({"--max-size", "1K"});
  {
    Client c(ep(), kKey);
    c.read_hello();
    EXPECT_EQ(c.hello().max_size, 1024u);
    const auto content = otter::test::random_bytes(1025, 1);
    c.send(c.push_frame(push_of("big", content)));
    EXPECT_EQ(c.expect_error().code, ErrorCode::too_large);
  }
  EXPECT_FALSE(fs::exists(root / "big"));
  // Exactly the limit is fine.
  const auto content = otter::test::random_bytes(1024, 2);
  Client c(ep(), kKey);
  c.push(push_of("fits", content), content);
  EXPECT_EQ(read_file(root / "fits"), content);
}

TEST_F(AgentTest, WrongShaIsHashMismatchOldFileIntactNoPartial) {
  write_file(root / "t.bin", "old content");
  start();
  const auto content = otter::test::random_bytes(100000, 3);
  PushSpec spec = push_of("t.bin", content);
  spec.sha = otter::test::sha256("something else");
  Client c(ep(), kKey);
  c.read_hello();
  c.send(c.push_frame(spec));
  ASSERT_EQ(c.expect_ready(), 0u);
  c.send_data(content);
  EXPECT_EQ(c.expect_error().code, ErrorCode::hash_mismatch);
  EXPECT_EQ(read_file(root / "t.bin"), "old content");
  EXPECT_TRUE(partial_files().empty());
}

TEST_F(AgentTest, WrongKeyIsAuthFailed) {
  start();
  Client c(ep(), "a-completely-different-key-42");
  c.read_hello();
  c.send(c.push_frame(push_of("x", "data")));
  EXPECT_EQ(c.expect_error().code, ErrorCode::auth_failed);
  EXPECT_FALSE(fs::exists(root / "x"));
}

TEST_F(AgentTest, ReplayedPushFromAnotherConnectionIsAuthFailed) {
  start();
  const std::string content = "replayed";
  const auto spec = push_of("r.txt", content);
  Client first(ep(), kKey);
  first.read_hello();
  const std::string recorded = first.push_frame(spec);
  Client second(ep(), kKey);
  second.read_hello();
  second.send(recorded);
  EXPECT_EQ(second.expect_error().code, ErrorCode::auth_failed);
  EXPECT_FALSE(fs::exists(root / "r.txt"));
  // Control: the recorded PUSH was valid on its own connection.
  first.send(recorded);
  ASSERT_EQ(first.expect_ready(), 0u);
  first.send_data(content);
  first.expect_done(spec);
  EXPECT_EQ(read_file(root / "r.txt"), content);
}

TEST_F(AgentTest, GarbageIsProtocolError) {
  start();
  const std::vector<std::string> garbage = {
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",              // unknown type
      std::string("\x10\xff\xff", 3) + "xxxx",          // control frame over 1024 bytes
      make_frame(0x12, "data before any request"),      // DATA not allowed yet
      make_frame(0x02, std::string(40, '\0')),          // device-to-pusher frame from the pusher
      make_frame(0x10, "\x01" + std::string(9, '\0')),  // PUSH (version 1) of the wrong length
  };
  for (const auto& g : garbage) {
    Client c(ep(), kKey);
    c.read_hello();
    c.send(g);
    const auto e = c.expect_error();
    EXPECT_EQ(e.code, ErrorCode::protocol) << otter::test::to_hex(g.substr(0, 8)) << ": " << e.message;
  }
  Client c(ep(), kKey);
  EXPECT_NO_THROW(c.read_hello());
}

TEST_F(AgentTest, TruncatedHeaderThenCloseDoesNotHurt) {
  start();
  for (int i = 0; i < 3; ++i) {
    Client c(ep(), kKey);
    c.read_hello();
    c.send(std::string("\x10\x00", 2));
  }  // closed mid-header
  {
    // Mid-PUSH payload, too.
    Client c(ep(), kKey);
    c.read_hello();
    const auto frame = c.push_frame(push_of("t", "x"));
    c.send(frame.substr(0, frame.size() / 2));
  }
  ASSERT_TRUE(agent->process().running());
  const std::string content = "still serving";
  Client c(ep(), kKey);
  c.push(push_of("after.txt", content), content);
  EXPECT_EQ(read_file(root / "after.txt"), content);
}

TEST_F(AgentTest, SilentClientGetsTimeout) {
  start({"--idle-timeout", "1"});
  Client c(ep(), kKey);
  c.read_hello();
  const auto t0 = std::chrono::steady_clock::now();
  const auto e = c.expect_error(10s);
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(e.code, ErrorCode::timeout);
  EXPECT_GE(elapsed, 900ms);
  EXPECT_LT(elapsed, 5s);
}

TEST_F(AgentTest, SilentDuringTransferTimesOutAndKeepsPartial) {
  start({"--idle-timeout", "1"});
  const auto content = otter::test::random_bytes(50000, 4);
  const auto spec = push_of("slow.bin", content);
  {
    Client c(ep(), kKey);
    c.read_hello();
    c.send(c.push_frame(spec));
    ASSERT_EQ(c.expect_ready(), 0u);
    c.send_data(content.substr(0, 20000));
    EXPECT_EQ(c.expect_error(10s).code, ErrorCode::timeout);
  }
  wait_for_log("result TIMEOUT");
  // The partial copy was kept: a new push of the same content resumes.
  Client c(ep(), kKey);
  c.read_hello();
  c.send(c.push_frame(spec));
  const auto off = c.expect_ready();
  EXPECT_EQ(off, 20000u);
  c.send_data(content, off);
  c.expect_done(spec);
  EXPECT_EQ(read_file(root / "slow.bin"), content);
}

TEST_F(AgentTest, InterruptedPushResumes) {
  start();
  const auto content = otter::test::random_bytes(100000, 5);
  const auto spec = push_of("resume/me.bin", content);
  {
    Client c(ep(), kKey);
    c.read_hello();
    c.send(c.push_frame(spec));
    ASSERT_EQ(c.expect_ready(), 0u);
    c.send_data(content.substr(0, 40000));
    // ACKs every window/4 = 16 KiB: wait until the agent has written at least 32 KiB, then drop the connection.
    std::uint64_t acked = 0;
    while (acked < 32768) {
      auto f = c.frame(10s);
      ASSERT_TRUE(f);
      ASSERT_EQ(f->type, 0x03);
      acked = *otter::core::decode_ack(otter::test::wire::bv(f->payload));
    }
  }
  wait_for_log("result CONNECTION_CLOSED");
  EXPECT_FALSE(fs::exists(root / "resume/me.bin"));
  Client c(ep(), kKey);
  c.read_hello();
  c.send(c.push_frame(spec));
  const auto off = c.expect_ready();
  EXPECT_GE(off, 32768u);
  EXPECT_LE(off, 40000u);
  c.send_data(content, off);
  c.expect_done(spec);
  EXPECT_EQ(read_file(root / "resume/me.bin"), content);
  EXPECT_TRUE(partial_files().empty());
}

TEST_F(AgentTest, ConcurrentPushOfSameNameIsBusy) {
  start();
  const auto content = otter::test::random_bytes(60000, 6);
  const auto spec = push_of("same.bin", content);
  Client a(ep(), kKey);
  a.read_hello();
  a.send(a.push_frame(spec));
  ASSERT_EQ(a.expect_ready(), 0u);  // a holds the name from here on
  a.send_data(content.substr(0, 30000));
  {
    Client b(ep(), kKey);
    b.read_hello();
    b.send(b.push_frame(spec));
    EXPECT_EQ(b.expect_error().code, ErrorCode::busy);
  }
  // Another name is not blocked.
  {
    Client d(ep(), kKey);
    d.push(push_of("other.bin", "other"), "other");
  }
  a.send_data(content, 30000);
  a.expect_done(spec);
  EXPECT_EQ(read_file(root / "same.bin"), content);
  // Free again.
  Client c(ep(), kKey);
  c.push(spec, content);
}

TEST_F(AgentTest, ConnectionsBeyondMaxSessionsGetBusy) {
  start({"--max-sessions", "2"});
  auto a = std::make_unique<Client>(ep(), kKey);
  Client b(ep(), kKey);
  a->read_hello();
  b.read_hello();
  {
    Client c(ep(), kKey);
    auto f = c.frame(10s);
    ASSERT_TRUE(f);
    auto e = otter::test::wire::as_error(*f);
    ASSERT_TRUE(e) << "first frame type " << int(f->type);
    EXPECT_EQ(e->code, ErrorCode::busy);
    EXPECT_TRUE(c.tcp().wait_closed(10s));
  }
  a.reset();
  wait_for_log("result CONNECTION_CLOSED");
  Client d(ep(), kKey);
  EXPECT_NO_THROW(d.read_hello());
}

TEST_F(AgentTest, ThreeDevicesServeIndependentRoots) {
  start({"--devices", "3", "--port-base", "0"}, 3);
  ASSERT_EQ(agent->devices().size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto num = "000" + std::to_string(i + 1);
    EXPECT_EQ(ep(i).id, "test-dev-" + num);
    EXPECT_EQ(ep(i).root, (root / ("dev-" + num)).string());
    for (std::size_t j = 0; j < i; ++j) EXPECT_NE(ep(i).port, ep(j).port);
  }
  for (std::size_t i = 0; i < 3; ++i) {
    const std::string content = "content of device " + std::to_string(i);
    Client c(ep(i), kKey);
    c.push(push_of("f.txt", content), content);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(c.hello().id.data), c.hello().id.size), ep(i).id);
  }
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(read_file(fs::path(ep(i).root) / "f.txt"), "content of device " + std::to_string(i));
  }
  EXPECT_FALSE(fs::exists(root / "f.txt"));
  // Locks are per device: the same name on two devices at once is fine.
  const auto content = otter::test::random_bytes(40000, 7);
  const auto spec = push_of("g.bin", content);
  Client a(ep(0), kKey);
  Client b(ep(1), kKey);
  a.read_hello();
  b.read_hello();
  a.send(a.push_frame(spec));
  b.send(b.push_frame(spec));
  ASSERT_EQ(a.expect_ready(), 0u);
  ASSERT_EQ(b.expect_ready(), 0u);
  a.send_data(content);
  b.send_data(content);
  a.expect_done(spec);
  b.expect_done(spec);
}

TEST_F(AgentTest, DevicesSpreadOverThreadsServeConcurrentlyAndStopCleanly) {
  start({"--devices", "6", "--port-base", "0", "--threads", "3"}, 6);
  EXPECT_TRUE(agent->process().wait_for_output("6 devices on 3 event-loop threads", 10s, true)) << agent->output();
  // Six transfers in flight at once, one per device (so on every thread), interleaved chunk by chunk.
  const auto content = otter::test::random_bytes(60000, 11);  // below the 64 KiB test window
  const auto spec = push_of("par.bin", content);
  std::vector<std::unique_ptr<Client>> clients;
  for (std::size_t i = 0; i < 6; ++i) {
    clients.push_back(std::make_unique<Client>(ep(i), kKey));
    clients.back()->read_hello();
    clients.back()->send(clients.back()->push_frame(spec));
    ASSERT_EQ(clients.back()->expect_ready(), 0u);
  }
  for (std::size_t i = 0; i < 6; ++i) clients[i]->send_data(content);
  for (std::size_t i = 0; i < 6; ++i) clients[i]->expect_done(spec);
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(read_file(fs::path(ep(i).root) / "par.bin"), content);

  // A transfer left open on the last thread's device: SIGTERM stops every thread, keeping the partial copy.
  Client open(ep(5), kKey);
  open.read_hello();
  open.send(open.push_frame(push_of("cut.bin", content)));
  ASSERT_EQ(open.expect_ready(), 0u);
  open.send_data(content.substr(0, 20000));
  auto f = open.frame(10s);
  ASSERT_TRUE(f);
  ASSERT_EQ(f->type, 0x03);
  ASSERT_TRUE(agent->process().signal(SIGTERM));
  EXPECT_EQ(agent->process().wait(15s), 0) << agent->output();
  EXPECT_TRUE(open.tcp().wait_closed(10s));
  // One summary line for all threads (finished sessions still lingering for their client's close count too).
  const std::string out = agent->output();
  const auto first = out.find("stopping: ");
  EXPECT_NE(first, std::string::npos) << out;
  EXPECT_EQ(out.find("stopping: ", first + 1), std::string::npos) << out;
  EXPECT_NE(out.find("'cut.bin' size 60000 offset 0 result CONNECTION_CLOSED"), std::string::npos) << out;
  std::size_t parts = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(ep(5).root) / ".otter/part", ec)) parts += e.exists() ? 1 : 0;
  EXPECT_EQ(parts, 2u) << out;  // .part + .meta, kept for resume
  EXPECT_FALSE(fs::exists(fs::path(ep(5).root) / "cut.bin"));
  agent.reset();
}

TEST_F(AgentTest, ThousandDevicesInOneProcess) {
  start({"--devices", "1000", "--port-base", "0", "--quiet"}, 1000);
  ASSERT_EQ(agent->devices().size(), 1000u);
  EXPECT_EQ(ep(999).id, "test-dev-1000");
  EXPECT_EQ(ep(999).root, (root / "dev-1000").string());
  for (std::size_t i : {std::size_t{0}, std::size_t{499}, std::size_t{999}}) {
    const std::string content = "device " + std::to_string(i);
    Client c(ep(i), kKey);
    c.push(push_of("n.txt", content), content);
    EXPECT_EQ(read_file(fs::path(ep(i).root) / "n.txt"), content);
  }
  EXPECT_FALSE(fs::exists(root / "dev-0002/n.txt"));
}

TEST_F(AgentTest, RateLimitSlowsTheTransfer) {
  start({"--rate", "64K"});
  const auto content = otter::test::random_bytes(160 * 1024, 8);
  const auto t0 = std::chrono::steady_clock::now();
  Client c(ep(), kKey);
  c.read_hello();
  c.send(c.push_frame(push_of("slow.bin", content)));
  ASSERT_EQ(c.expect_ready(), 0u);
  // Window-limited sending, as a pusher would.
  std::uint64_t sent = 0;
  std::uint64_t acked = 0;
  while (sent < content.size()) {
    while (sent < content.size() && sent - acked < 65536) {
      const std::size_t n = std::min<std::size_t>(16384, content.size() - sent);
      c.send(make_frame(0x12, std::string_view(content).substr(sent, n)));
      sent += n;
    }
    if (sent == content.size()) break;
    auto f = c.frame(20s);
    ASSERT_TRUE(f);
    ASSERT_EQ(f->type, 0x03);
    acked = *otter::core::decode_ack(otter::test::wire::bv(f->payload));
  }
  c.expect_done(push_of("slow.bin", content), 30s);
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  // ~2.4 s at 64 KiB/s after the first 6.4 KiB burst.
  EXPECT_GE(elapsed, 1500ms);
  EXPECT_LT(elapsed, 20s);
}

TEST_F(AgentTest, RebootFlagRunsHookAfterDone) {
  const auto out = base / "hook.out";
  start({"--on-reboot", "printf '%s|%s|%s' \"$1\" \"$2\" \"$3\" > '" + out.string() + "'"});
  const std::string content = "new firmware";
  PushSpec spec = push_of("fw.bin", content);
  spec.kind = otter::core::Kind::firmware;
  spec.flags = otter::core::flags::reboot;
  Client c(ep(), kKey);
  c.read_hello();
  EXPECT_NE(c.hello().caps & otter::core::caps::firmware, 0);
  c.send(c.push_frame(spec));
  ASSERT_EQ(c.expect_ready(), 0u);
  c.send_data(content);
  EXPECT_EQ(c.expect_done(spec).rebooting, 1);
  wait_for_log("reboot hook done");
  EXPECT_EQ(read_file(out), "test-dev|fw.bin|" + (root / "fw.bin").string());
  EXPECT_EQ(read_file(root / "fw.bin"), content);
  EXPECT_NE(agent->process().stderr_text().find("reboot requested"), std::string::npos);
}

TEST_F(AgentTest, SigtermDuringTransferExitsZeroAndKeepsPartial) {
  start();
  const auto content = otter::test::random_bytes(100000, 9);
  const auto spec = push_of("cut.bin", content);
  Client c(ep(), kKey);
  c.read_hello();
  c.send(c.push_frame(spec));
  ASSERT_EQ(c.expect_ready(), 0u);
  c.send_data(content.substr(0, 20000));
  auto f = c.frame(10s);  // first ACK (16 KiB): the agent is mid-transfer
  ASSERT_TRUE(f);
  ASSERT_EQ(f->type, 0x03);
  ASSERT_TRUE(agent->process().signal(SIGTERM));
  EXPECT_EQ(agent->process().wait(15s), 0) << agent->output();
  EXPECT_TRUE(c.tcp().wait_closed(10s));
  EXPECT_FALSE(fs::exists(root / "cut.bin"));
  const auto parts = partial_files();
  EXPECT_EQ(parts.size(), 2u);  // .part + .meta
  agent.reset();                // already stopped
}

TEST_F(AgentTest, SigintExitsZero) {
  start();
  ASSERT_TRUE(agent->process().signal(SIGINT));
  EXPECT_EQ(agent->process().wait(15s), 0) << agent->output();
  agent.reset();
}

// --- command line ---------------------------------------------------------------------------------------------

class AgentCliTest : public AgentTest {
 protected:
  /// Runs the agent with these arguments; it must exit (not serve) with a non-zero code and say why on stderr.
  void expect_refused(const std::vector<std::string>& args, int code, const std::string& needle) {
    std::vector<std::string> a{otter::test::agent_bin()};
    a.insert(a.end(), args.begin(), args.end());
    Process p(a);
    const auto rc = p.wait(15s);
    ASSERT_TRUE(rc) << "agent kept running with " << ::testing::PrintToString(args) << "\n" << p.output();
    EXPECT_EQ(*rc, code) << p.output();
    EXPECT_NE(p.stderr_text().find(needle), std::string::npos) << "expected '" << needle << "'\n" << p.output();
    EXPECT_EQ(p.stdout_text().find("listening on"), std::string::npos) << p.output();
  }
};

TEST_F(AgentCliTest, BadArgumentsExitNonZeroWithMessage) {
  const std::string r = root.string();
  expect_refused({}, 2, "--root");
  expect_refused({"--root", r}, 2, "--key-file");
  expect_refused({"--root", r, "--key-file", key_file, "--listen", "nonsense"}, 2, "ADDR:PORT");
  expect_refused({"--root", r, "--key-file", key_file, "--max-size", "12Q"}, 2, "--max-size");
  expect_refused({"--root", r, "--key-file", key_file, "--rate", "fast"}, 2, "--rate");
  expect_refused({"--root", r, "--key-file", key_file, "--window", "100"}, 2, "--window");
  expect_refused({"--root", r, "--key-file", key_file, "--devices", "2", "--port-base", "65535"}, 2, "65535");
  expect_refused({"--root", r, "--key-file", key_file, "--bogus"}, 2, "bogus");
  expect_refused({"--root", r, "--key-file", key_file, "--listen", "256.1.1.1:0"}, 2, "not an IP address");
}

TEST_F(AgentCliTest, BadKeyFileExits2) {
  const std::string r = root.string();
  const auto short_key = otter::test::write_key_file(base / "short", "too-short");
  expect_refused({"--root", r, "--key-file", short_key}, 2, "at least 16 bytes");
  expect_refused({"--root", r, "--key-file", (base / "missing").string()}, 2, "key file");
  write_file(base / "two-lines", "0123456789abcdef\n0123456789abcdef\n");
  expect_refused({"--root", r, "--key-file", (base / "two-lines").string()}, 2, "one line");
}

TEST_F(AgentCliTest, KeyWhitespaceIsIgnored) {
  write_file(base / "spaced", "  \t" + kKey + " \r\n\n");
  agent = std::make_unique<AgentProcess>(std::vector<std::string>{otter::test::agent_bin(), "--listen", "127.0.0.1:0",
                                                                  "--root", root.string(), "--key-file",
                                                                  (base / "spaced").string(), "--name", "test-dev"});
  const std::string content = "k";
  Client c(ep(), kKey);
  c.push(push_of("k.txt", content), content);
}

TEST_F(AgentCliTest, PortInUseExits1) {
  start();
  expect_refused(
      {"--root", root.string(), "--key-file", key_file, "--listen", "127.0.0.1:" + std::to_string(ep().port)}, 1,
      "cannot listen");
}

}  // namespace
