// The `otter` binary: argument and configuration errors (exit 2), --json in every case, and a few runs against the
// in-process fake device (exit 0 / 1, output formats).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cli_test_util.hpp"
#include "fake_device.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/files.hpp"
#include "otter/test/tcp.hpp"
#include "otter/test/temp_dir.hpp"

namespace otter::test {
namespace {

class OtterBinary : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = write_key_file(dir_ / "key", FakeDevice::Config{}.key);
    write_file(dir_ / "greeting.txt", "hello");
  }
  std::string file() const { return (dir_ / "greeting.txt").string(); }

  TempDir dir_{"otter-cli"};
  std::string key_;
};

struct UsageCase {
  const char* what;
  std::vector<std::string> args;  ///< FILE/KEY placeholders: @file, @key, @dir, @missing
  int code;                       ///< error code in JSON
  const char* message_part;       ///< expected in the message
};

std::vector<std::string> expand(const std::vector<std::string>& args, const std::string& file, const std::string& key,
                                const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& a : args) {
    if (a == "@file") {
      out.push_back(file);
    } else if (a == "@key") {
      out.push_back(key);
    } else if (a == "@dir") {
      out.push_back(dir);
    } else if (a == "@missing") {
      out.push_back(dir + "/does-not-exist");
    } else {
      out.push_back(a);
    }
  }
  return out;
}

TEST_F(OtterBinary, UsageErrorsExitTwoWithAClearMessage) {
  write_file(dir_ / "short.key", "tooshort\n");
  const std::string short_key = (dir_ / "short.key").string();
  const std::vector<UsageCase> cases = {
      {"no subcommand", {}, 104, "subcommand"},
      {"unknown subcommand", {"pull", "x"}, 104, "pull"},
      {"push without FILE", {"push", "--to", "h", "--key-file", "@key"}, 104, "FILE"},
      {"push without --to", {"push", "@file", "--key-file", "@key"}, 104, "--to"},
      {"push without --key-file", {"push", "@file", "--to", "h"}, 104, "--key-file"},
      {"stat without NAME", {"stat", "--to", "h", "--key-file", "@key"}, 104, "NAME"},
      {"unknown option", {"push", "@file", "--to", "h", "--key-file", "@key", "--frobnicate"}, 104, "frobnicate"},
      {"bad kind", {"push", "@file", "--to", "h", "--key-file", "@key", "--kind", "bootloader"}, 104, "bootloader"},
      {"zero timeout", {"push", "@file", "--to", "h", "--key-file", "@key", "--timeout", "0"}, 104, "timeout"},
      {"bad chunk size",
       {"push", "@file", "--to", "h", "--key-file", "@key", "--chunk-size", "70000"},
       104,
       "chunk-size"},
      {"port out of range", {"push", "@file", "--to", "h:70000", "--key-file", "@key"}, 104, "70000"},
      {"port not a number", {"stat", "x", "--to", "h:http", "--key-file", "@key"}, 104, "http"},
      {"empty host", {"stat", "x", "--to", ":12345", "--key-file", "@key"}, 104, "host"},
      {"bad sha256", {"push", "@file", "--to", "h", "--key-file", "@key", "--sha256", "abc"}, 104, "SHA-256"},
      {"missing key file", {"push", "@file", "--to", "h", "--key-file", "@missing"}, 107, "does-not-exist"},
      {"short key", {"stat", "x", "--to", "h", "--key-file", short_key}, 106, "at least 16"},
      {"missing local file", {"push", "@missing", "--to", "h", "--key-file", "@key"}, 107, "does-not-exist"},
      {"local file is a directory", {"push", "@dir", "--to", "h", "--key-file", "@key"}, 104, "not a regular file"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const auto args = expand(c.args, file(), key_, dir_.str());
    const auto text = run_otter(args);
    EXPECT_EQ(text.exit_code, 2) << text.describe;
    EXPECT_TRUE(text.out.empty()) << text.describe;
    EXPECT_EQ(text.err.rfind("error: ", 0), 0u) << text.describe;
    EXPECT_NE(text.err.find(c.message_part), std::string::npos) << text.describe;

    auto json_args = args;
    json_args.push_back("--json");
    const auto json = run_otter(json_args);
    EXPECT_EQ(json.exit_code, 2) << json.describe;
    const char* name = c.code == 104 ? "INVALID_ARGUMENT" : c.code == 106 ? "CONFIG" : "NOT_FOUND";
    expect_json_error(json, c.code, name);
    const auto j = json.json();
    if (j.is_object()) {
      EXPECT_NE(j["error"].value("message", "").find(c.message_part), std::string::npos) << json.describe;
    }
  }
}

TEST_F(OtterBinary, VersionAndHelp) {
  auto r = run_otter({"--version"});
  EXPECT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.out.rfind("otter ", 0), 0u) << r.describe;
  EXPECT_TRUE(r.out.ends_with(" (protocol v1)\n")) << r.describe;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '.'), 2) << r.describe;  // otter X.Y.Z
  r = run_otter({"push", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.describe;
  for (const char* opt : {"--to", "--key-file", "--as", "--kind", "--reboot", "--json", "--sha256", "--timeout",
                          "--connect-timeout", "--quiet"}) {
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
  }
}

TEST_F(OtterBinary, ConnectionRefusedIsExitOne) {
  const RefusedPort refused;  // bound, never listening: connections are refused
  const std::string to = refused.address();
  auto r = run_otter({"push", file(), "--to", to, "--key-file", key_});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  EXPECT_TRUE(r.out.empty()) << r.describe;
  EXPECT_EQ(r.err, "error: CONNECT_FAILED (100): connect to " + to + ": Connection refused\n") << r.describe;
  r = run_otter({"push", file(), "--to", to, "--key-file", key_, "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 100, "CONNECT_FAILED");
  EXPECT_TRUE(r.err.empty()) << r.describe;
}

TEST_F(OtterBinary, PushAndStatAgainstAFakeDevice) {
  FakeDevice dev({});
  const std::string to = "127.0.0.1:" + std::to_string(dev.port());

  auto r = run_otter({"stat", "greeting.txt", "--to", to, "--key-file", key_, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  auto j = r.json();
  EXPECT_EQ(j, nlohmann::json::parse(R"({"ok":true,"device":"fake-1","name":"greeting.txt","exists":false,)"
                                     R"("size":0,"sha256":null,"fw_state":"unknown"})"))
      << r.describe;

  r = run_otter({"push", file(), "--to", to, "--key-file", key_});  // --as defaults to the basename
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  const std::string prefix = "ok: greeting.txt -> fake-1 (5 B, sha256 2cf24dba\u2026, resumed from 0, ";
  EXPECT_EQ(r.out.rfind(prefix, 0), 0u) << r.describe;
  EXPECT_TRUE(r.out.ends_with(" s)\n")) << r.describe;
  EXPECT_EQ(r.out.find_first_not_of("0123456789.", prefix.size()), r.out.size() - 4) << r.describe;
  EXPECT_TRUE(r.err.empty()) << r.describe;  // not a terminal: no progress bar

  r = run_otter({"push", file(), "--to", to, "--key-file", key_, "--as", "sub/dir/x.txt", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  j = r.json();
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["device"], "fake-1");
  EXPECT_EQ(j["name"], "sub/dir/x.txt");
  EXPECT_EQ(j["kind"], "file");
  EXPECT_EQ(j["size"], 5);
  EXPECT_EQ(j["sha256"], "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  EXPECT_EQ(j["resumed_from"], 0);
  EXPECT_EQ(j["bytes_sent"], 5);
  EXPECT_EQ(j["rebooting"], false);
  EXPECT_EQ(j["fw_state"], "unknown");
  EXPECT_TRUE(j["seconds"].is_number()) << r.describe;
  std::string stored;
  ASSERT_TRUE(dev.file("sub/dir/x.txt", stored));
  EXPECT_EQ(stored, "hello");

  r = run_otter({"stat", "sub/dir/x.txt", "--to", to, "--key-file", key_});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.out,
            "fake-1: sub/dir/x.txt: 5 B (5 B), sha256 "
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n");

  r = run_otter({"push", file(), "--to", to, "--key-file", key_, "--quiet"});
  EXPECT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_TRUE(r.out.empty() && r.err.empty()) << r.describe;
}

TEST_F(OtterBinary, DeviceErrorIsExitOneWithNameAndCode) {
  FakeDevice dev({});
  const std::string to = "127.0.0.1:" + std::to_string(dev.port());
  const std::string other = "0000000000000000000000000000000000000000000000000000000000000000";
  auto r = run_otter({"push", file(), "--to", to, "--key-file", key_, "--sha256", other});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  EXPECT_EQ(r.err.rfind("error: HASH_MISMATCH (5): ", 0), 0u) << r.describe;
  EXPECT_TRUE(r.out.empty()) << r.describe;
  r = run_otter({"push", file(), "--to", to, "--key-file", key_, "--sha256", other, "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 5, "HASH_MISMATCH");
  std::string stored;
  EXPECT_FALSE(dev.file("greeting.txt", stored));
}

TEST_F(OtterBinary, InterruptIsCanceledAndStillPrintsJson) {
  FakeDevice::Config cfg;
  cfg.mode = FakeDevice::Mode::silent;
  FakeDevice dev(cfg);
  Process p(
      {otter_bin(), "push", file(), "--to", "127.0.0.1:" + std::to_string(dev.port()), "--key-file", key_, "--json"});
  // Once the device has the connection, the CLI is inside the transfer (its signal handling is installed).
  ASSERT_TRUE(dev.wait_accepted(1, std::chrono::seconds(30))) << p.output();
  ASSERT_TRUE(p.signal(SIGINT));
  const auto code = p.wait(std::chrono::seconds(30));
  ASSERT_TRUE(code.has_value()) << p.output();
  EXPECT_EQ(*code, 1) << p.output();
  OtterRun r;
  r.exit_code = *code;
  r.out = p.stdout_text();
  r.describe = p.output();
  expect_json_error(r, 108, "CANCELED");
  EXPECT_EQ(r.json()["error"].value("message", ""), "interrupted by SIGINT") << r.describe;
}

}  // namespace
}  // namespace otter::test
