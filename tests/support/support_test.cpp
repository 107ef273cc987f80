// Self-tests of the shared test helpers (they guard every end-to-end suite, so they must be right themselves).
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/files.hpp"
#include "otter/test/process.hpp"
#include "otter/test/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using otter::test::Process;

TEST(Process, CapturesStdoutLinesAndExitCode) {
  Process p({"/bin/sh", "-c", "echo one; echo two >&2; echo 'listening on x'; exit 3"});
  auto line = p.read_line_until([](const std::string& l) { return l.find("listening on") != l.npos; }, 10s);
  ASSERT_TRUE(line) << p.output();
  EXPECT_EQ(*line, "listening on x");
  EXPECT_EQ(p.wait(10s), 3);
  EXPECT_EQ(p.stdout_text(), "one\nlistening on x\n");
  EXPECT_EQ(p.stderr_text(), "two\n");
}

TEST(Process, ReadLineTimesOutAndSignalKills) {
  Process p({"/bin/sh", "-c", "exec sleep 30"});
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(p.read_line(200ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms);
  EXPECT_FALSE(p.wait(50ms));
  EXPECT_TRUE(p.signal(SIGTERM));
  EXPECT_EQ(p.wait(10s), 128 + SIGTERM);
  EXPECT_FALSE(p.running());
}

TEST(Process, EnvCwdAndStdin) {
  otter::test::TempDir dir;
  Process::Options o;
  o.env["OTTER_SUPPORT_X"] = "42";
  o.cwd = dir.str();
  o.stdin_pipe = true;
  Process p({"sh", "-c", "read v; echo \"$v $OTTER_SUPPORT_X $(pwd)\""}, o);
  p.write_stdin("hi\n");
  p.close_stdin();
  auto line = p.read_line(10s);
  ASSERT_TRUE(line) << p.output();
  EXPECT_EQ(*line, "hi 42 " + dir.str());
  EXPECT_EQ(p.wait(10s), 0);
}

TEST(Process, MissingBinaryThrows) { EXPECT_THROW(Process({"/nonexistent/otter-nothing"}), std::runtime_error); }

TEST(Process, LargeOutputDoesNotBlockChild) {
  Process p({"/bin/sh", "-c", "head -c 1000000 /dev/zero; head -c 1000000 /dev/zero >&2"});
  EXPECT_EQ(p.wait(20s), 0);
  EXPECT_EQ(p.stdout_text().size(), 1000000u);
  EXPECT_EQ(p.stderr_text().size(), 1000000u);
}

TEST(TempDir, RemovedRecursivelyWithoutFollowingSymlinks) {
  otter::test::TempDir outside("otter-support-outside");
  otter::test::write_file(outside / "keep", "x");
  fs::path p;
  {
    otter::test::TempDir d;
    p = d.path();
    otter::test::write_file(d / "a/b/c.txt", "hello");
    fs::create_directory_symlink(outside.path(), d / "link");
    EXPECT_TRUE(fs::exists(d / "a/b/c.txt"));
  }
  EXPECT_FALSE(fs::exists(p));
  EXPECT_TRUE(fs::exists(outside / "keep"));
}

TEST(Files, RandomIsDeterministicAndMatchesFile) {
  otter::test::TempDir d;
  const auto a = otter::test::random_bytes(100003, 7);
  EXPECT_EQ(a, otter::test::random_bytes(100003, 7));
  EXPECT_NE(a, otter::test::random_bytes(100003, 8));
  otter::test::write_random_file(d / "r.bin", 100003, 7);
  EXPECT_EQ(otter::test::read_file(d / "r.bin"), a);
  EXPECT_EQ(otter::test::sha256_file_hex(d / "r.bin"), otter::test::sha256_hex(a));
  EXPECT_EQ(otter::test::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_THROW(otter::test::read_file(d / "missing"), std::runtime_error);
}

TEST(Files, TreeSnapshotAndDiff) {
  otter::test::TempDir d;
  otter::test::write_file(d / "x/y.txt", "1");
  fs::create_symlink("/etc", d / "l");
  const auto before = otter::test::snapshot_tree(d.path());
  EXPECT_EQ(otter::test::list_tree(d.path()), (std::vector<std::string>{"l -> /etc", "x/", "x/y.txt"}));
  otter::test::write_file(d / "x/y.txt", "2");
  otter::test::write_file(d / "z", "");
  const auto diff = otter::test::diff_trees(before, otter::test::snapshot_tree(d.path()));
  EXPECT_NE(diff.find("~ x/y.txt"), std::string::npos) << diff;
  EXPECT_NE(diff.find("+ z"), std::string::npos) << diff;
  EXPECT_EQ(otter::test::diff_trees(before, before), "");
}

TEST(Agent, ParsesListeningLine) {
  auto ep =
      otter::test::parse_listening_line("otter-agent: device dev-0001 listening on 127.0.0.1:40001 root /tmp/r");
  ASSERT_TRUE(ep);
  EXPECT_EQ(ep->id, "dev-0001");
  EXPECT_EQ(ep->host, "127.0.0.1");
  EXPECT_EQ(ep->port, 40001);
  EXPECT_EQ(ep->root, "/tmp/r");
  EXPECT_EQ(ep->address(), "127.0.0.1:40001");
  auto v6 = otter::test::parse_listening_line("otter-agent: device d listening on [::1]:5 root /r x");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->root, "/r x");
  EXPECT_EQ(v6->address(), "[::1]:5");
  EXPECT_FALSE(otter::test::parse_listening_line("otter-agent: something else"));
  EXPECT_FALSE(otter::test::parse_listening_line("otter-agent: device d listening on 1.2.3.4:99999 root /r"));
  // The firmware host builds print the same shape under their own name; the program is one word.
  auto fw = otter::test::parse_listening_line("basicota-host: device esp32-a1 listening on 127.0.0.1:7 root /d/fs");
  ASSERT_TRUE(fw);
  EXPECT_EQ(fw->id, "esp32-a1");
  EXPECT_EQ(fw->port, 7);
  EXPECT_FALSE(otter::test::parse_listening_line("some log: device d listening on 127.0.0.1:7 root /r"));
  EXPECT_FALSE(otter::test::parse_listening_line(": device d listening on 127.0.0.1:7 root /r"));
}

TEST(Bin, PathsUnderBinDir) {
  EXPECT_EQ(otter::test::agent_bin(), std::string(OTTER_BIN_DIR) + "/otter-agent");
  EXPECT_EQ(otter::test::otter_bin(), std::string(OTTER_BIN_DIR) + "/otter");
}
