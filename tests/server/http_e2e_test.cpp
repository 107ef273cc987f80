// otter-server end to end: real otter-agent devices on loopback, the original POST /api/upload, jobs with fan-out
// by tag, live events, probing, and artifacts uploaded over HTTP then pushed.
#include <gtest/gtest.h>

#include <set>

#include "server_fixture.hpp"

namespace otter::test::http {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

class EndToEnd : public ServerTest {
 protected:
  /// Starts one agent process simulating `n` devices (roots AGENT/dev-0001, ...), all with kKey.
  void start_agent(std::size_t n = 1) {
    const auto key = write_key_file(dir_ / "device.key", kKey);
    std::vector<std::string> argv = {agent_bin(),  "--listen", "127.0.0.1:0", "--root", (dir_ / "agent").string(),
                                     "--key-file", key,        "--name",      "dev"};
    if (n > 1) argv.insert(argv.end(), {"--devices", std::to_string(n)});
    agent_ = std::make_unique<AgentProcess>(argv, n);
  }
  void TearDown() override {
    ServerTest::TearDown();
    if (agent_) {
      EXPECT_EQ(agent_->stop(), 0) << agent_->output();
    }
  }
  /// Waits for job.finished of `id` on the stream, then returns GET /api/v1/jobs/{id}.
  json wait_finished(EventStream& events, std::int64_t id) {
    auto ev = events.next_matching(
        [&](const EventStream::Event& e) {
          return e.type == "job.finished" && json::parse(e.data, nullptr, false).value("id", std::int64_t{0}) == id;
        },
        60s);
    EXPECT_TRUE(ev) << "job " << id << " did not finish\n" << server().output();
    return client().get("/api/v1/jobs/" + std::to_string(id)).json();
  }
  std::unique_ptr<AgentProcess> agent_;
};

TEST_F(EndToEnd, OriginalUploadReachesTheDevice) {
  start_agent();
  start();
  add_device("esp32", agent_->device().address());
  const std::string content = random_bytes(300000, 7);
  write_file(root() / "main.py", content);
  EventStream events(server().host(), server().port());

  auto r = client().post("/api/upload", {{"filePath", "main.py"}});
  ASSERT_EQ(r.status, 202) << r.body;
  const auto id = r.json()["job"].get<std::int64_t>();
  EXPECT_EQ(r.body, R"({"message": "File is being transmitted to ESP32.", "job": )" + std::to_string(id) + "}");
  const auto job = wait_finished(events, id);
  EXPECT_EQ(job["state"], "succeeded") << job.dump(2);
  EXPECT_EQ(job["devices"][0]["state"], "succeeded");
  EXPECT_EQ(job["devices"][0]["bytes"], content.size());
  EXPECT_TRUE(job["devices"][0]["error"].is_null());
  EXPECT_EQ(read_file(fs::path(agent_->device().root) / "main.py"), content);

  // The device record remembers the contact.
  auto d = client().get("/api/v1/devices/esp32").json();
  EXPECT_EQ(d["online"], true) << d.dump();
  EXPECT_FALSE(d["last_seen"].is_null());

  // An absolute path inside the root works the same; the same content again is "unchanged".
  r = client().post("/api/upload", {{"filePath", (root() / "main.py").string()}});
  ASSERT_EQ(r.status, 202) << r.body;
  const auto again = wait_finished(events, r.json()["job"].get<std::int64_t>());
  EXPECT_EQ(again["state"], "succeeded");
  EXPECT_EQ(again["devices"][0]["unchanged"], true);
}

TEST_F(EndToEnd, JobFanOutByTagWithLiveProgress) {
  start_agent(3);
  start();
  for (std::size_t i = 0; i < 3; ++i) {
    add_device("node-" + std::to_string(i), agent_->device(i).address(), kKey,
               i < 2 ? std::vector<std::string>{"lab"} : std::vector<std::string>{"prod"});
  }
  // The artifact arrives over HTTP first.
  const std::string fw = random_bytes(2u << 20, 11);
  auto r = client().request("POST", "/api/v1/artifacts", multipart_body({{"file", "app.bin", fw}}, "xXx"),
                            {{"Content-Type", "multipart/form-data; boundary=xXx"}});
  ASSERT_EQ(r.status, 201) << r.body;
  EventStream events(server().host(), server().port());

  r = client().post("/api/v1/jobs", {{"artifact", "app.bin"}, {"tag", "lab"}, {"as", "fw/app.bin"}});
  ASSERT_EQ(r.status, 201) << r.body;
  const auto id = r.json()["id"].get<std::int64_t>();
  ASSERT_EQ(r.json()["devices"].size(), 2u);
  std::set<std::string> types;
  std::optional<EventStream::Event> finished;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!finished && std::chrono::steady_clock::now() < deadline) {
    auto ev = events.next(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
    if (!ev) break;
    if (!ev->type.empty()) types.insert(ev->type);
    if (ev->type == "target.progress") {
      const auto p = json::parse(ev->data);
      EXPECT_EQ(p["job"], id);
      EXPECT_LE(p["bytes"].get<std::uint64_t>(), p["total"].get<std::uint64_t>());
    }
    if (ev->type == "job.finished" && json::parse(ev->data).value("id", std::int64_t{0}) == id) finished = ev;
  }
  ASSERT_TRUE(finished) << server().output();
  EXPECT_TRUE(types.count("job.created"));
  EXPECT_TRUE(types.count("target.updated"));
  EXPECT_TRUE(types.count("target.progress"));
  const auto job = client().get("/api/v1/jobs/" + std::to_string(id)).json();
  EXPECT_EQ(job["state"], "succeeded") << job.dump(2);
  for (const auto& t : job["devices"]) {
    EXPECT_EQ(t["state"], "succeeded");
    EXPECT_EQ(t["bytes"], fw.size());
    EXPECT_EQ(t["total"], fw.size());
  }
  EXPECT_EQ(sha256_file_hex(fs::path(agent_->device(0).root) / "fw/app.bin"), sha256_hex(fw));
  EXPECT_EQ(sha256_file_hex(fs::path(agent_->device(1).root) / "fw/app.bin"), sha256_hex(fw));
  EXPECT_FALSE(fs::exists(fs::path(agent_->device(2).root) / "fw/app.bin")) << "not tagged lab";
  // Metrics saw the transfers.
  const auto metrics = client().get("/metrics").body;
  EXPECT_NE(metrics.find("otter_transfers_total{outcome=\"succeeded\"} 2"), std::string::npos) << metrics;
}

TEST_F(EndToEnd, ProbeReportsTheDeviceOrTheError) {
  start_agent();
  start();
  add_device("good", agent_->device().address());
  add_device("wrong-key", agent_->device().address(), "a-different-key-0123456789");
  add_device("down", "127.0.0.1:1");
  auto r = client().request("POST", "/api/v1/devices/good/probe");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["online"], true);
  EXPECT_EQ(r.json()["device_id"], agent_->device().id);
  EXPECT_GT(r.json()["max_size"].get<std::uint64_t>() + r.json()["free"].get<std::uint64_t>(), 0u);

  r = client().request("POST", "/api/v1/devices/down/probe");
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_EQ(r.error_name(), "CONNECT_FAILED");
  r = client().request("POST", "/api/v1/devices/wrong-key/probe");
  EXPECT_GE(r.status, 400) << r.body;
  EXPECT_FALSE(r.error_name().empty()) << r.body;
  EXPECT_FALSE(r.message().empty());
}

}  // namespace
}  // namespace otter::test::http
