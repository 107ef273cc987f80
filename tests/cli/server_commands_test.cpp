// `otter --server URL devices|artifacts|deploy|jobs|watch` against a real otter-server process with real otter-agent
// devices on loopback: results, --json shapes, exit codes and error messages.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cli_test_util.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/files.hpp"
#include "otter/test/temp_dir.hpp"
#include "server_fixture.hpp"

namespace otter::test {
namespace {

class ServerCli : public http::ServerTest {
 protected:
  void SetUp() override {
    key_file_ = write_key_file(dir_ / "device.key", kKey);
    std::filesystem::create_directories(dir_ / "dev");
  }

  /// An agent holding files under dir_/dev/<name>.
  AgentEndpoint start_agent(const std::string& name) {
    agents_.push_back(std::make_unique<AgentProcess>(
        std::vector<std::string>{agent_bin(), "--listen", "127.0.0.1:0", "--root", (dir_ / "dev" / name).string(),
                                 "--key-file", key_file_, "--name", name, "--quiet"}));
    return agents_.back()->device();
  }

  /// otter --server URL ARGS...
  OtterRun otter(std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", server().url()});
    return run_otter(std::move(args));
  }

  std::string key_file_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
};

TEST_F(ServerCli, DevicesAddListShowSetProbeRemove) {
  start();
  const auto dev = start_agent("dev-1");
  auto r = otter({"devices", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.json()["devices"].size(), 0U);

  r = otter(
      {"devices", "add", "dev-1", "--address", dev.address(), "--key-file", key_file_, "--tag", "lab", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  auto j = r.json();
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["name"], "dev-1");
  EXPECT_EQ(j["tags"], nlohmann::json::array({"lab"}));
  EXPECT_FALSE(j.contains("key")) << "the key is write-only";

  r = otter({"devices"});  // a table
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_NE(r.out.find("NAME"), std::string::npos) << r.describe;
  EXPECT_NE(r.out.find(dev.address()), std::string::npos) << r.describe;

  r = otter({"devices", "set", "dev-1", "--tag", "field", "--tag", "eu", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.json()["tags"], nlohmann::json::array({"eu", "field"}));
  r = otter({"devices", "list", "--tag", "eu", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.json()["devices"].size(), 1U);
  r = otter({"devices", "list", "--tag", "lab", "--json"});
  EXPECT_EQ(r.json()["devices"].size(), 0U);

  r = otter({"devices", "probe", "dev-1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.json()["online"], true);
  EXPECT_EQ(r.json()["device_id"], "dev-1");

  r = otter({"devices", "show", "dev-1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.json()["online"], true) << "the probe was recorded";

  r = otter({"devices", "rm", "dev-1"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.out, "removed device dev-1\n");
  r = otter({"devices", "show", "dev-1", "--json"});
  EXPECT_EQ(r.exit_code, 2) << r.describe;
  expect_json_error(r, 107, "NOT_FOUND");
  r = otter({"devices", "show", "dev-1"});
  EXPECT_NE(r.err.find("device 'dev-1' is not registered"), std::string::npos) << r.describe;
}

TEST_F(ServerCli, DeviceValidationErrorsComeFromTheServer) {
  start();
  auto r = otter({"devices", "add", "bad name", "--address", "127.0.0.1:1", "--key-file", key_file_, "--json"});
  EXPECT_EQ(r.exit_code, 2) << r.describe;
  expect_json_error(r, 104, "INVALID_ARGUMENT");
  r = otter({"devices", "add", "d", "--address", "127.0.0.1:1", "--key-file", (dir_ / "missing.key").string()});
  EXPECT_EQ(r.exit_code, 2) << r.describe;
  EXPECT_NE(r.err.find("--key-file"), std::string::npos) << r.describe;
  r = otter({"devices", "set", "d", "--json"});
  EXPECT_EQ(r.exit_code, 2) << r.describe;
  expect_json_error(r, 104, "INVALID_ARGUMENT");
}

TEST_F(ServerCli, ArtifactsUploadListRemove) {
  start();
  write_random_file(dir_ / "fw.bin", 300 * 1024 + 7, 11);
  auto r = otter({"artifacts", "upload", (dir_ / "fw.bin").string(), "--as", "builds/v1 fw.bin", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.json()["name"], "builds/v1 fw.bin");
  EXPECT_EQ(r.json()["sha256"], sha256_file_hex(dir_ / "fw.bin"));
  EXPECT_EQ(sha256_file_hex(root() / "builds" / "v1 fw.bin"), sha256_file_hex(dir_ / "fw.bin"));

  r = otter({"artifacts", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  ASSERT_EQ(r.json()["artifacts"].size(), 1U);
  EXPECT_EQ(r.json()["artifacts"][0]["size"], 300 * 1024 + 7);
  r = otter({"artifacts"});
  EXPECT_NE(r.out.find(sha256_file_hex(dir_ / "fw.bin")), std::string::npos) << r.describe;

  r = otter({"artifacts", "rm", "builds/v1 fw.bin"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_FALSE(std::filesystem::exists(root() / "builds" / "v1 fw.bin"));
  r = otter({"artifacts", "rm", "../etc/passwd", "--json"});
  EXPECT_NE(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.json()["ok"], false);
  r = otter({"artifacts", "upload", (dir_ / "nope.bin").string(), "--json"});
  EXPECT_EQ(r.exit_code, 2) << r.describe;
  expect_json_error(r, 107, "NOT_FOUND");
}

TEST_F(ServerCli, DeployFollowsTheJobToEachDevicesConfirmedResult) {
  start();
  const auto d1 = start_agent("dev-1");
  const auto d2 = start_agent("dev-2");
  for (const auto& [name, addr] : {std::pair{"dev-1", d1.address()}, std::pair{"dev-2", d2.address()}})
    add_device(name, addr, kKey, {"lab"});
  add_device("dev-down", "127.0.0.1:1", kKey, {"lab"});
  write_random_file(root() / "app.bin", 700 * 1024, 3);
  const std::string want = sha256_file_hex(root() / "app.bin");

  auto r = otter({"deploy", "app.bin", "--device", "dev-1", "-d", "dev-2", "--as", "app/main.bin"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_NE(r.out.find("ok: dev-1: app/main.bin"), std::string::npos) << r.describe;
  EXPECT_NE(r.out.find("succeeded: 2/2 ok"), std::string::npos) << r.describe;
  EXPECT_EQ(sha256_file_hex(dir_ / "dev" / "dev-1" / "app" / "main.bin"), want);
  EXPECT_EQ(sha256_file_hex(dir_ / "dev" / "dev-2" / "app" / "main.bin"), want);

  // By tag, with one device down: the job fails, the CLI says which device and why, and exits 1.
  r = otter({"deploy", "app.bin", "--tag", "lab", "--as", "app/main.bin", "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  const auto j = r.json();
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["job"]["state"], "failed");
  ASSERT_EQ(j["job"]["devices"].size(), 3U);
  for (const auto& t : j["job"]["devices"]) {
    if (t["device"] == "dev-down") {
      EXPECT_EQ(t["state"], "failed");
      EXPECT_EQ(t["error"]["name"], "CONNECT_FAILED");
    } else {
      EXPECT_EQ(t["state"], "succeeded");
      EXPECT_EQ(t["unchanged"], true) << "the devices already hold this content";
    }
  }
  r = otter({"deploy", "app.bin", "--tag", "lab"});
  EXPECT_NE(r.out.find("failed: dev-down: CONNECT_FAILED (100)"), std::string::npos) << r.describe;

  r = otter({"jobs", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.json()["jobs"].size(), 3U);
  r = otter({"jobs", "show", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.json()["job"]["state"], "succeeded");
}

TEST_F(ServerCli, DeployErrorsAreClear) {
  start();
  add_device("dev-1", "127.0.0.1:1");
  auto r = otter({"deploy", "app.bin", "--json"});
  EXPECT_EQ(r.exit_code, 2) << r.describe;
  expect_json_error(r, 104, "INVALID_ARGUMENT");
  r = otter({"deploy", "missing.bin", "-d", "dev-1", "--json"});
  EXPECT_EQ(r.exit_code, 2) << r.describe;
  expect_json_error(r, 107, "NOT_FOUND");
  r = otter({"deploy", "../../etc/passwd", "-d", "dev-1", "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 110, "FORBIDDEN");
  r = otter({"jobs", "show", "99", "--json"});
  EXPECT_EQ(r.exit_code, 2) << r.describe;
  expect_json_error(r, 107, "NOT_FOUND");
}

TEST_F(ServerCli, NoWaitThenWatchTheJob) {
  start();
  const auto d1 = start_agent("dev-1");
  add_device("dev-1", d1.address());
  write_random_file(root() / "a.bin", 64 * 1024, 5);
  auto r = otter({"deploy", "a.bin", "-d", "dev-1", "--no-wait", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  const auto id = r.json()["job"]["id"].get<std::int64_t>();
  r = otter({"watch", std::to_string(id), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe;
  EXPECT_EQ(r.json()["job"]["state"], "succeeded");
  EXPECT_EQ(r.json()["job"]["devices"][0]["bytes"], 64 * 1024);
}

TEST_F(ServerCli, WatchPrintsEveryEventLive) {
  start();
  Process watch({otter_bin(), "--server", server().url(), "watch", "--json"});
  ASSERT_TRUE(watch.wait_for_output("watching events on", std::chrono::seconds(20), true)) << watch.output();
  add_device("dev-9", "127.0.0.1:1");
  const auto line = watch.read_line_until([](const std::string& l) { return l.find("device.created") != l.npos; },
                                          std::chrono::seconds(20));
  ASSERT_TRUE(line) << watch.output();
  const auto j = nlohmann::json::parse(*line);
  EXPECT_EQ(j["data"]["name"], "dev-9");
  // The server going away ends the watch with a clear error.
  ASSERT_EQ(server().stop(), 0);
  server_.reset();
  EXPECT_EQ(watch.wait(std::chrono::seconds(20)), 1) << watch.output();
  EXPECT_NE(watch.stdout_text().find("CONNECTION_CLOSED"), std::string::npos) << watch.output();
}

TEST_F(ServerCli, UnreachableServerAndBadUrl) {
  auto r = run_otter({"--server", "http://127.0.0.1:1", "devices", "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 100, "CONNECT_FAILED");
  r = run_otter({"--server", "https://example.org", "devices", "--json"});
  EXPECT_EQ(r.exit_code, 2) << r.describe;
  expect_json_error(r, 104, "INVALID_ARGUMENT");
  r = run_otter({"--server", "http://127.0.0.1:1/api", "devices"});
  EXPECT_EQ(r.exit_code, 2) << r.describe;
  EXPECT_NE(r.err.find("has a path"), std::string::npos) << r.describe;
}

TEST_F(ServerCli, TokenFromFileOrEnvironment) {
  write_file(dir_ / "token", "s3cret-token-0123456789\n");
  ::chmod((dir_ / "token").c_str(), 0600);
  start({"--token-file", (dir_ / "token").string()});
  const std::vector<std::string> add = {"--server",  server().url(), "devices",    "add",     "d1",
                                        "--address", "127.0.0.1:1",  "--key-file", key_file_, "--json"};
  auto r = run_otter(add);
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 111, "UNAUTHORIZED");

  auto with_file = add;
  with_file.insert(with_file.begin(), {"--token-file", (dir_ / "token").string()});
  r = run_otter(with_file);
  EXPECT_EQ(r.exit_code, 0) << r.describe;

  Process::Options env;
  env.env["OTTER_TOKEN"] = "s3cret-token-0123456789";
  std::vector<std::string> argv = {otter_bin(), "--server", server().url(), "devices", "rm", "d1"};
  Process p(argv, env);
  EXPECT_EQ(p.wait(std::chrono::seconds(60)), 0) << p.output();
}

}  // namespace
}  // namespace otter::test
