// The `legacy` adapter (`otter push --protocol legacy`) against `otter-agent --mode legacy`, the original design's
// MicroPython receiver reproduced on the wire: one recv(1024), UTF-8 text, "NAME\nCONTENT", no answer.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "adapter_fixture.hpp"
#include "cli_test_util.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/files.hpp"
#include "otter/test/process.hpp"
#include "otter/test/tcp.hpp"
#include "otter/test/temp_dir.hpp"
#include "stock_job.hpp"

namespace otter::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kWait = 30s;

class LegacyAdapter : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() / "device";
    agent_ = std::make_unique<AgentProcess>(simulator_argv("legacy", root_, "esp32-legacy"));
    device_ = &agent_->process();
    ep_ = agent_->device();
    EXPECT_EQ(ep_.id, "esp32-legacy");
  }

  OtterRun push(const fs::path& file, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"push", file.string(), "--protocol", "legacy", "--to", ep_.address(), "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_otter(args);
  }
  fs::path source(const std::string& name, const std::string& content) {
    const auto p = dir_.path() / "src" / name;
    write_file(p, content);
    return p;
  }

  TempDir dir_{"otter-legacy"};
  fs::path root_;
  std::unique_ptr<AgentProcess> agent_;
  Process* device_ = nullptr;  ///< agent_'s process
  AgentEndpoint ep_;
};

TEST_F(LegacyAdapter, TextFileIsWrittenUnderItsBaseNameUnconfirmed) {
  const std::string text = "print('hello from otter')\n# UTF-8 is fine: é ✓\n";
  const auto r = push(source("main.py", text), {"--as", "app/main.py"});
  ASSERT_EQ(r.exit_code, 0) << r.describe << device_->output();
  const auto j = r.json();
  EXPECT_EQ(j["protocol"], "legacy");
  EXPECT_EQ(j["size"], text.size());
  EXPECT_EQ(j["confirmed"], false);  // the original receiver answers nothing
  // The receiver keeps the last path segment, in its working directory.
  EXPECT_EQ(read_file(root_ / "main.py"), text);
  EXPECT_EQ(list_tree(root_), std::vector<std::string>{"main.py"});
  ASSERT_TRUE(device_->wait_for_output("File main.py has been written.", kWait, /*from_stderr=*/true))
      << device_->output();

  // Without --json: one line saying what is (not) known.
  const auto line = run_otter({"push", source("b.txt", "x").string(), "--protocol", "legacy", "--to", ep_.address()});
  ASSERT_EQ(line.exit_code, 0) << line.describe;
  EXPECT_NE(line.out.find("unconfirmed: the original receiver answers nothing"), std::string::npos) << line.describe;
}

TEST_F(LegacyAdapter, WhatTheSingleReadCannotTakeIsRefusedUnlessForced) {
  // name (8) + newline + 1015 = 1024: the most the receiver takes whole.
  const auto fits = source("fits.txt", std::string(1015, 'a'));
  ASSERT_EQ(push(fits).exit_code, 0);
  EXPECT_EQ(read_file(root_ / "fits.txt").size(), 1015u);

  const std::string big(2000, 'b');
  const auto file = source("big.txt", big);
  const auto r = push(file);
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 2, "TOO_LARGE");
  const std::string message = r.json()["error"]["message"];
  EXPECT_NE(message.find("2008 bytes, over the 1024"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(root_ / "big.txt"));

  // Forced, it reproduces the original flaw faithfully: the first 1024 - 8 bytes are written, the rest is lost.
  const auto forced = push(file, {"--force"});
  ASSERT_EQ(forced.exit_code, 0) << forced.describe << device_->output();
  EXPECT_EQ(read_file(root_ / "big.txt"), big.substr(0, 1024 - 8));
}

TEST_F(LegacyAdapter, BinariesAndFirmwareAreRefusedBeforeConnecting) {
  const auto bin = dir_.path() / "src" / "fw.bin";
  write_file(bin, std::string("\x7f"
                              "ELF\xff\xfe\x00\x01",
                              8));
  const auto r = push(bin);
  EXPECT_EQ(r.exit_code, 2) << r.describe;
  expect_json_error(r, 104, "INVALID_ARGUMENT");
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("not UTF-8 text"), std::string::npos);

  const auto fw = push(source("app.txt", "text"), {"--kind", "firmware"});
  expect_json_error(fw, 11, "UNSUPPORTED_KIND");
  EXPECT_TRUE(list_tree(root_).empty());
  EXPECT_TRUE(device_->running());  // nothing reached the receiver, which would have died on it
}

TEST_F(LegacyAdapter, AbsentDeviceIsConnectFailed) {
  RefusedPort nobody;
  const auto r = run_otter({"push", source("a.txt", "a").string(), "--protocol", "legacy", "--to", nobody.address(),
                            "--json", "--connect-timeout", "5"});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 100, "CONNECT_FAILED");
}

TEST_F(LegacyAdapter, SimulatorStopsLikeTheOriginalOnInputItCannotDecode) {
  // What a naive pusher (the original Flask backend on a binary file) sends: the receiver's decode raises and the
  // MicroPython program ends with a traceback. The simulator does the same: exit status 1.
  TcpClient c("127.0.0.1", ep_.port);
  ASSERT_TRUE(c.send_all(std::string("fw.bin\n\xff\xd8\xff\xe0", 11)));
  c.shutdown_write();
  const auto code = device_->wait(kWait);
  ASSERT_TRUE(code) << device_->output();
  EXPECT_EQ(*code, 1);
  EXPECT_NE(device_->stderr_text().find("UnicodeError"), std::string::npos) << device_->output();
  EXPECT_FALSE(fs::exists(root_ / "fw.bin"));
}

TEST_F(LegacyAdapter, SimulatorStopsOnAMessageWithoutNewline) {
  TcpClient c("127.0.0.1", ep_.port);
  ASSERT_TRUE(c.send_all(std::string("no newline here")));
  c.shutdown_write();
  const auto code = device_->wait(kWait);
  ASSERT_TRUE(code) << device_->output();
  EXPECT_EQ(*code, 1);
  EXPECT_NE(device_->stderr_text().find("ValueError"), std::string::npos) << device_->output();
}

// --- through otter-server jobs
// ---------------------------------------------------------------------------------------

class LegacyJob : public StockJobTest {
 protected:
  void SetUp() override {
    start();
    sim_root_ = dir_ / "legacy-device";
    const auto ep = start_simulator("legacy", sim_root_);
    register_device("old-1", ep.address(), "legacy");  // no key: the original receiver has none
  }
  nlohmann::json run_job(const std::string& artifact) {
    return StockJobTest::run_job({{"artifact", artifact}, {"devices", {"old-1"}}});
  }
  fs::path sim_root_;
};

TEST_F(LegacyJob, JobDeliversTextAndRefusesWhatTheReceiverWouldTruncate) {
  write_file(root() / "hello.txt", "hello from a job\n");
  auto ok = run_job("hello.txt");
  EXPECT_EQ(ok.value("state", ""), "succeeded") << ok.dump();
  EXPECT_EQ(read_file(sim_root_ / "hello.txt"), "hello from a job\n");

  write_file(root() / "big.txt", std::string(3000, 'x'));
  auto big = run_job("big.txt");
  EXPECT_EQ(big.value("state", ""), "failed") << big.dump();
  ASSERT_EQ(big["devices"].size(), 1u);
  EXPECT_EQ(big["devices"][0]["error"].value("code", 0), 2) << big.dump();  // TOO_LARGE, not retried into success
  EXPECT_FALSE(fs::exists(sim_root_ / "big.txt"));
  EXPECT_TRUE(simulator().running());
  // A legacy device is never probed: its receiver would take the probe for a file and stop.
  auto probe = client().post("/api/v1/devices/old-1/probe", nlohmann::json::object());
  EXPECT_EQ(probe.status, 400) << probe.body;
  EXPECT_TRUE(simulator().running());
}

}  // namespace
}  // namespace otter::test
