// otter test support — running otter-agent for end-to-end tests.
//
//   otter::test::TempDir dir;
//   auto key = otter::test::write_key_file(dir / "key", "0123456789abcdef-test");
//   otter::test::AgentProcess agent({otter::test::agent_bin(), "--listen", "127.0.0.1:0", "--root",
//                                    (dir / "root").string(), "--key-file", key, "--name", "dev"});
//   TcpClient c(agent.device().host, agent.device().port);
//   ...
//   EXPECT_EQ(agent.stop(), 0);
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "otter/test/process.hpp"

namespace otter::test {

/// One line "PROGRAM: device ID listening on ADDR:PORT root DIR" (ADDR may be "[v6]").
struct AgentEndpoint {
  std::string id;
  std::string host;  ///< without brackets
  std::uint16_t port = 0;
  std::string root;
  /// "host:port" ("[host]:port" for IPv6), as the CLI takes it.
  [[nodiscard]] std::string address() const;
};

/// Parses "PROGRAM: device ID listening on ADDR root DIR" (otter-agent's line; the firmware host builds print the
/// same shape under their own program name). nullopt for any other line.
std::optional<AgentEndpoint> parse_listening_line(std::string_view line);

/// Writes the key on one line (with a trailing newline) with mode 0600; returns the path as a string.
std::string write_key_file(const std::filesystem::path& path, std::string_view key);

/// Starts the agent (argv[0] = its path, e.g. agent_bin()) and waits for `devices` listening lines. Throws
/// std::runtime_error with the agent's output if it exits or does not announce them in time.
class AgentProcess {
 public:
  explicit AgentProcess(std::vector<std::string> argv, std::size_t devices = 1,
                        std::chrono::milliseconds timeout = std::chrono::seconds(30), Process::Options options = {});

  [[nodiscard]] Process& process() { return *proc_; }
  [[nodiscard]] const std::vector<AgentEndpoint>& devices() const { return devices_; }
  [[nodiscard]] const AgentEndpoint& device(std::size_t i = 0) const { return devices_.at(i); }
  /// SIGTERM, then wait: the exit code, or nullopt if it did not exit in time (it is then killed).
  std::optional<int> stop(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  [[nodiscard]] std::string output() const { return proc_->output(); }

 private:
  std::unique_ptr<Process> proc_;
  std::vector<AgentEndpoint> devices_;
};

}  // namespace otter::test
