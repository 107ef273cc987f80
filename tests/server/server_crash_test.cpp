// The whole otter-server killed with SIGKILL in the middle of a 200-device fan-out (and again while it recovers):
// after a restart every job reaches a final state, every device holds the artifact's SHA-256, and the database
// passes PRAGMA integrity_check. Real processes: otter-server (REST API) and one otter-agent simulating 200 devices.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "otter/server/store.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/files.hpp"
#include "otter/test/process.hpp"
#include "otter/test/tcp.hpp"
#include "otter/test/temp_dir.hpp"

namespace otter::server {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using otter::test::AgentProcess;
using otter::test::Process;

constexpr std::string_view kKey = "otter-crash-test-key-0123";
constexpr std::size_t kDevices = 200;

struct HttpResponse {
  int status = 0;
  std::string body;
};

/// One HTTP/1.1 request on its own connection (Connection: close); nullopt if the server did not answer in time.
std::optional<HttpResponse> http(std::uint16_t port, const std::string& method, const std::string& target,
                                 const std::string& body = "", std::chrono::milliseconds timeout = 10s) {
  try {
    otter::test::TcpClient c("127.0.0.1", port, timeout);
    std::string req =
        fmt::format("{} {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n", method, target, port);
    if (!body.empty() || method == "POST") {
      req += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n", body.size());
    }
    req += "\r\n" + body;
    if (!c.send_all(req)) return std::nullopt;
    if (!c.wait_closed(timeout)) return std::nullopt;
    const std::string& raw = c.discarded();
    const auto head_end = raw.find("\r\n\r\n");
    if (raw.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) return std::nullopt;
    HttpResponse r;
    r.status = std::stoi(raw.substr(9, 3));
    std::string head = raw.substr(0, head_end);
    for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    r.body = raw.substr(head_end + 4);
    if (head.find("transfer-encoding: chunked") != std::string::npos) {
      std::string out;
      std::size_t pos = 0;
      while (pos < r.body.size()) {
        const auto eol = r.body.find("\r\n", pos);
        if (eol == std::string::npos) break;
        const std::size_t n = std::stoul(r.body.substr(pos, eol - pos), nullptr, 16);
        if (n == 0) break;
        out += r.body.substr(eol + 2, n);
        pos = eol + 2 + n + 2;
      }
      r.body = std::move(out);
    }
    return r;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

class Server {
 public:
  Server(const std::filesystem::path& data, const std::filesystem::path& log) {
    Process::Options o;
    o.stderr_file = log.string();  // one log file per server run
    proc_ = std::make_unique<Process>(
        std::vector<std::string>{otter::test::bin_path("otter-server"), "--listen", "127.0.0.1:0", "--data",
                                 data.string(), "--log-level", "warn"},
        o);
    auto line = proc_->read_line_until(
        [](const std::string& l) { return l.find("otter-server: listening on http://") != std::string::npos; }, 30s);
    if (!line) throw std::runtime_error("otter-server did not start\n" + proc_->output());
    port_ = static_cast<std::uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  Process& process() { return *proc_; }

 private:
  std::unique_ptr<Process> proc_;
  std::uint16_t port_ = 0;
};

/// The job's JSON (GET /api/v1/jobs/{id}), or null if the server did not answer.
json get_job(std::uint16_t port, std::int64_t id) {
  auto r = http(port, "GET", fmt::format("/api/v1/jobs/{}", id));
  if (!r || r->status != 200) return json();
  return json::parse(r->body, nullptr, false);
}

std::map<std::string, int> states(const json& job) {
  std::map<std::string, int> n;
  if (!job.is_object() || !job.contains("devices")) return n;
  for (const auto& d : job.at("devices")) ++n[d.at("state").get<std::string>()];
  return n;
}

/// Polls (every 100 ms, bounded by `timeout`) until pred(job) holds for every job.
bool poll_jobs(std::uint16_t port, const std::vector<std::int64_t>& ids,
               const std::function<bool(const std::vector<json>&)>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::vector<json> jobs;
    for (auto id : ids) jobs.push_back(get_job(port, id));
    if (pred(jobs)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(100ms);  // poll interval (the condition is re-checked, with a deadline)
  }
}

bool is_final_state(const json& j) {
  if (!j.is_object() || !j.contains("state")) return false;
  const auto s = j.at("state").get<std::string>();
  return s == "succeeded" || s == "failed" || s == "canceled";
}

TEST(ServerCrash, KillNineDuringA200DeviceFanOut) {
  const auto server_bin = otter::test::bin_path("otter-server");
  ASSERT_TRUE(std::filesystem::exists(server_bin)) << server_bin << " is not built";

  otter::test::TempDir dir("otter-crash");
  const auto key_file = otter::test::write_key_file(dir / "agent.key", kKey);
  const auto data = dir / "data";
  const std::uint64_t size = 512 * 1024;
  otter::test::write_random_file(data / "artifacts" / "fw" / "app.bin", size, 42);
  const std::string sha = otter::test::sha256_file_hex(data / "artifacts" / "fw" / "app.bin");

  // 256 KiB/s per connection: each transfer takes ~2 s, 200 devices at concurrency 64 take several waves.
  AgentProcess fleet(
      {otter::test::agent_bin(), "--listen", "127.0.0.1:0", "--root", (dir / "fleet").string(), "--key-file",
       key_file, "--devices", std::to_string(kDevices), "--port-base", "0", "--rate", "262144", "--quiet"},
      kDevices, 60s);

  auto server = std::make_unique<Server>(data, dir / "server-1.log");
  std::vector<std::string> names;
  for (std::size_t i = 0; i < kDevices; ++i) {
    names.push_back(fmt::format("dev-{:03}", i));
    const json body = {{"name", names.back()},
                       {"address", fleet.device(i).address()},
                       {"key", std::string(kKey)},
                       {"tags", i < 50 ? json::array({"first50"}) : json::array()}};
    auto r = http(server->port(), "POST", "/api/v1/devices", body.dump());
    ASSERT_TRUE(r) << "POST /api/v1/devices: no answer";
    ASSERT_EQ(r->status, 201) << r->body;
  }
  std::vector<std::int64_t> ids;
  for (const json& body : {json{{"artifact", "fw/app.bin"}, {"devices", names}},
                           json{{"artifact", "fw/app.bin"}, {"tag", "first50"}, {"as", "copy.bin"}}}) {
    auto r = http(server->port(), "POST", "/api/v1/jobs", body.dump());
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 201) << r->body;
    ids.push_back(json::parse(r->body)["id"].get<std::int64_t>());
  }

  // Mid-run: some devices done, some in flight.
  ASSERT_TRUE(poll_jobs(
      server->port(), {ids[0]},
      [](const std::vector<json>& j) {
        auto n = states(j[0]);
        return n["succeeded"] >= 20 && n["running"] >= 1;
      },
      120s))
      << get_job(server->port(), ids[0]).dump();
  const auto before = states(get_job(server->port(), ids[0]));
  std::cout << fmt::format("[ figures  ] killed at: {} succeeded, {} running, {} queued\n", before.at("succeeded"),
                           before.count("running") ? before.at("running") : 0,
                           before.count("queued") ? before.at("queued") : 0);
  server->process().kill();  // SIGKILL to the process group
  EXPECT_EQ(server->process().exit_code(), 128 + SIGKILL);
  server.reset();

  // Restart; kill it again while it recovers (if it has not finished by then), restart once more.
  server = std::make_unique<Server>(data, dir / "server-2.log");
  const bool recovering = poll_jobs(
      server->port(), ids,
      [](const std::vector<json>& j) {
        if (is_final_state(j[0]) && is_final_state(j[1])) return true;
        return states(j[0])["running"] >= 1;
      },
      60s);
  ASSERT_TRUE(recovering) << get_job(server->port(), ids[0]).dump();
  server->process().kill();
  server.reset();
  server = std::make_unique<Server>(data, dir / "server-3.log");

  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(poll_jobs(
      server->port(), ids, [](const std::vector<json>& j) { return is_final_state(j[0]) && is_final_state(j[1]); },
      240s))
      << get_job(server->port(), ids[0]).dump(1);
  std::cout << fmt::format(
      "[ figures  ] after the second restart the jobs finished in {} ms\n",
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());

  for (std::size_t k = 0; k < ids.size(); ++k) {
    const json job = get_job(server->port(), ids[k]);
    ASSERT_TRUE(job.is_object() && job.contains("devices")) << job.dump(1);
    EXPECT_EQ(job["state"], "succeeded") << job.dump(1);
    const std::string as = k == 0 ? "app.bin" : "copy.bin";
    for (const auto& d : job["devices"]) {
      const auto name = d["device"].get<std::string>();
      const std::size_t i = std::stoul(name.substr(4));
      if (d["state"] != "succeeded") continue;  // reported above through the job state
      const auto p = std::filesystem::path(fleet.device(i).root) / as;
      ASSERT_TRUE(std::filesystem::exists(p)) << p;
      EXPECT_EQ(otter::test::sha256_file_hex(p), sha) << p;
    }
    EXPECT_EQ(job["devices"].size(), k == 0 ? kDevices : 50u);
  }
  auto list = http(server->port(), "GET", "/api/v1/jobs?limit=100");
  ASSERT_TRUE(list && list->status == 200);
  const json listed = json::parse(list->body);
  ASSERT_TRUE(listed.contains("jobs"));
  EXPECT_EQ(listed["jobs"].size(), ids.size());
  for (const auto& j : listed["jobs"]) EXPECT_TRUE(is_final_state(j)) << j.dump();

  // A clean stop, then the database itself.
  server->process().signal(SIGTERM);
  EXPECT_EQ(server->process().wait(30s), 0);
  server.reset();
  auto store = open_sqlite_store((data / "otter.db").string());
  ASSERT_TRUE(store) << store.error().to_string();
  auto ok = (*store)->check_integrity();
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_TRUE(*ok);
  auto unfinished = (*store)->unfinished_jobs();
  ASSERT_TRUE(unfinished);
  EXPECT_TRUE(unfinished->empty());
}

}  // namespace
}  // namespace otter::server
