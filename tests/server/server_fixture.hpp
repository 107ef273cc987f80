// otter-server tests — a fixture running the real otter-server on 127.0.0.1 (ephemeral port) with its own data
// directory and artifact root in a temp dir; it must stop with exit code 0 on SIGTERM.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "http_client.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/files.hpp"
#include "otter/test/temp_dir.hpp"

namespace otter::test::http {

class ServerTest : public ::testing::Test {
 protected:
  /// Starts the server with --data / --artifacts in the temp dir, `args` and, if non-empty, a --config file.
  void start(std::vector<std::string> args = {}, const std::string& toml = {}) {
    std::filesystem::create_directories(root());
    std::vector<std::string> all = {"--data", (dir_ / "data").string(), "--artifacts", root().string()};
    if (!toml.empty()) {
      write_file(dir_ / "server.toml", toml);
      all.insert(all.end(), {"--config", (dir_ / "server.toml").string()});
    }
    all.insert(all.end(), args.begin(), args.end());
    server_ = std::make_unique<ServerProcess>(std::move(all));
  }
  void TearDown() override {
    if (!server_) return;
    const auto rc = server_->stop();
    EXPECT_EQ(rc, 0) << "otter-server did not stop cleanly\n" << server_->output();
  }
  [[nodiscard]] std::filesystem::path root() const { return dir_ / "artifacts"; }
  Client& client() { return server_->client(); }
  ServerProcess& server() { return *server_; }
  /// A fresh connection (e.g. for custom headers without disturbing the kept-alive one).
  [[nodiscard]] std::unique_ptr<Client> new_client() const {
    return std::make_unique<Client>(server_->host(), server_->port());
  }
  /// Registers an otter device; expects 201.
  void add_device(const std::string& name, const std::string& address, const std::string& key = kKey,
                  const std::vector<std::string>& tags = {}) {
    auto r = client().post("/api/v1/devices", {{"name", name}, {"address", address}, {"key", key}, {"tags", tags}});
    ASSERT_EQ(r.status, 201) << r.body << "\n" << r.error;
  }

  static constexpr const char* kKey = "0123456789abcdef-otter-test-key";
  TempDir dir_{"otter-http"};
  std::unique_ptr<ServerProcess> server_;
};

}  // namespace otter::test::http
