// otter-agent — the device agent: one TCP listener per (simulated) device, one core::Receiver per connection, all on
// one thread (Boost.Asio, C++20 coroutines). Asio stays inside agent/src.
//
//   otter::agent::Agent agent(options, key);
//   auto eps = agent.start();          // binds every listener
//   for (auto& e : *eps) print(...);   // "otter-agent: device ID listening on ADDR:PORT root DIR"
//   agent.run();                       // until SIGINT / SIGTERM or stop()
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "otter/agent/options.hpp"
#include "otter/common/error.hpp"

namespace otter::agent {

struct Endpoint {
  std::string id;
  std::string address;  ///< "ADDR:PORT" as bound ("[v6]:PORT" for IPv6)
  std::uint16_t port = 0;
  std::string root;
};

class Agent {
 public:
  /// `key` is the pre-shared secret (already validated: >= 16 bytes).
  Agent(Options options, std::string key);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  /// Creates the device roots, binds every listener and installs the SIGINT/SIGTERM handlers. STORAGE / IO errors
  /// with a message naming the device, address or directory.
  Result<std::vector<Endpoint>> start();
  /// Serves until SIGINT / SIGTERM or stop(): then stops accepting, interrupts open sessions (their partial copies
  /// are kept for resume) and returns.
  void run();
  /// Thread-safe request to stop run().
  void stop();

  struct Impl;  ///< opaque (agent/src); public only so that the sessions in agent.cpp can name it

 private:
  std::unique_ptr<Impl> impl_;
};

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
std::uint64_t raise_fd_limit();

}  // namespace otter::agent
