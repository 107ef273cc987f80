// A device inside the test process, for exercising the push engine without otter-agent: a TCP listener on
// 127.0.0.1:<ephemeral> whose connections are served by core::Receiver over an in-memory StoragePort (files and
// resumable partial copies kept in maps). Besides honest behaviour it can misbehave in the ways a pusher must survive
// (Mode). Each connection runs on its own thread; all waits use poll(2) with deadlines.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace otter::test {

class FakeDevice {
 public:
  enum class Mode {
    honest,        ///< core::Receiver
    garbage,       ///< sends an HTTP-like banner instead of HELLO, then waits for the peer to close
    silent,        ///< accepts and never sends anything
    forged_ready,  ///< sends a proper HELLO, then answers PUSH with READY whose MAC is wrong (device impostor)
    bad_version,   ///< HELLO with version 2
  };

  struct Config {
    std::string key = "fake-device-key-0123456789";
    std::string id = "fake-1";
    std::uint32_t window = 64 * 1024;
    std::uint64_t max_size = 0;
    Mode mode = Mode::honest;
    /// If non-zero: the device drops the connection once it has read this many bytes in total from a connection
    /// (a network cut; the Receiver suspends the transfer, keeping a partial copy for resume). Applies once.
    std::uint64_t cut_after_bytes = 0;
    /// Advertise caps::digest_last (the SHA-256 may follow the data).
    bool digest_last = false;
  };

  explicit FakeDevice(Config config);
  ~FakeDevice();  ///< stops accepting, joins every connection thread
  FakeDevice(const FakeDevice&) = delete;
  FakeDevice& operator=(const FakeDevice&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }

  /// Committed content of `name` into `content`; false if there is no such file.
  bool file(const std::string& name, std::string& content) const;
  void put_file(const std::string& name, std::string content);
  /// Bytes held in the partial copy of `name` (0 if none).
  std::uint64_t partial_size(const std::string& name) const;
  /// Number of connections fully served so far.
  int connections() const { return connections_.load(); }
  /// Waits until the device has accepted at least `n` connections; false on timeout.
  bool wait_accepted(int n, std::chrono::milliseconds timeout);
  /// Bytes the device has read from pushers (all connections).
  std::uint64_t bytes_received() const { return bytes_received_.load(); }

  // In-memory device state shared by sessions (public for the storage port in the .cpp).
  struct Partial {
    std::uint64_t size = 0;
    std::array<std::uint8_t, 32> sha256{};
    std::string data;
  };
  struct State {
    mutable std::mutex mu;
    std::map<std::string, std::string> files;
    std::map<std::string, Partial> partials;
    std::set<std::string> locked;
  };

 private:
  void accept_loop();
  void serve(int fd);
  void serve_honest(int fd);
  void serve_rogue(int fd);

  Config cfg_;
  int listen_fd_ = -1;
  int wake_rd_ = -1;
  int wake_wr_ = -1;
  std::uint16_t port_ = 0;
  State state_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> cut_done_{false};
  std::atomic<int> connections_{0};
  std::atomic<std::uint64_t> bytes_received_{0};
  std::mutex threads_mu_;
  std::condition_variable accepted_cv_;
  int accepted_ = 0;  // guarded by threads_mu_
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace otter::test
