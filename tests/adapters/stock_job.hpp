// tests/adapters — a real otter-server with stock-device simulators (otter-agent --mode …) registered under their
// protocol, and jobs run on them through the REST API: the adapters as the server uses them.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "adapter_fixture.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/process.hpp"
#include "server_fixture.hpp"

namespace otter::test {

class StockJobTest : public http::ServerTest {
 protected:
  static constexpr auto kJobWait = std::chrono::seconds(60);

  /// Starts `otter-agent --mode MODE` on an ephemeral loopback port with `extra` arguments; returns its endpoint.
  AgentEndpoint start_simulator(const std::string& mode, const std::filesystem::path& root,
                                const std::vector<std::string>& extra = {}) {
    simulators_.push_back(std::make_unique<AgentProcess>(simulator_argv(mode, root, mode + "-sim", extra)));
    return simulators_.back()->device();
  }

  /// Registers a device of `protocol` (key omitted when empty); expects 201.
  void register_device(const std::string& name, const std::string& address, const std::string& protocol,
                       const std::string& key = {}) {
    nlohmann::json body = {{"name", name}, {"address", address}, {"protocol", protocol}};
    if (!key.empty()) body["key"] = key;
    auto r = client().post("/api/v1/devices", body);
    ASSERT_EQ(r.status, 201) << r.body;
  }

  /// Runs a job and returns its final JSON (bounded polling of GET /api/v1/jobs/ID).
  nlohmann::json run_job(const nlohmann::json& request) {
    auto r = client().post("/api/v1/jobs", request);
    EXPECT_EQ(r.status, 201) << r.body;
    const auto id = r.json().value("id", std::int64_t{0});
    const auto deadline = std::chrono::steady_clock::now() + kJobWait;
    for (;;) {
      auto j = client().get("/api/v1/jobs/" + std::to_string(id)).json();
      const std::string state = j.value("state", "");
      if (state == "succeeded" || state == "failed" || state == "canceled") return j;
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "job did not finish: " << j.dump();
        return j;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // poll interval; the loop re-checks the state
    }
  }

  Process& simulator(std::size_t i = 0) { return simulators_.at(i)->process(); }

  std::vector<std::unique_ptr<AgentProcess>> simulators_;
};

}  // namespace otter::test
