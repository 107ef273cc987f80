// A one-connection TCP proxy that cuts the link: it forwards a client's connection to a target, and once it has
// forwarded `limit` bytes from the client to the target it closes both sides (the network "breaks" mid-transfer).
// Target -> client bytes are forwarded untouched. One thread, poll(2); nothing sleeps. The proxy also parses the
// otter frames it forwards to the target, so a test knows exactly how many content (DATA payload) bytes got through.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace otter::test {

class CutProxy {
 public:
  /// Listens on 127.0.0.1:<ephemeral>; serves the first connection only. Throws std::runtime_error on failure.
  CutProxy(std::uint16_t target_port, std::uint64_t limit);
  ~CutProxy();
  CutProxy(const CutProxy&) = delete;
  CutProxy& operator=(const CutProxy&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  /// Waits until the proxied connection is over (cut, or closed by either side). False on timeout.
  bool wait_done(std::chrono::milliseconds timeout);
  /// Client -> target bytes forwarded so far.
  [[nodiscard]] std::uint64_t forwarded() const { return forwarded_.load(); }
  /// True if the proxy cut the connection at `limit` (rather than a side closing first).
  [[nodiscard]] bool cut() const { return cut_.load(); }
  /// DATA payload bytes among the forwarded client -> target bytes (frames: type u8, length u16 BE, payload).
  [[nodiscard]] std::uint64_t data_forwarded() const { return data_forwarded_.load(); }
  /// Frames whose header was forwarded, and how many of them were DATA.
  [[nodiscard]] std::uint64_t frames_forwarded() const { return frames_.load(); }
  [[nodiscard]] std::uint64_t data_frames_forwarded() const { return data_frames_.load(); }

 private:
  void run();
  void relay(int client, int target);
  void parse(const char* data, std::size_t n);

  std::uint16_t target_port_;
  std::uint64_t limit_;
  int listen_fd_ = -1;
  int wake_rd_ = -1;
  int wake_wr_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<std::uint64_t> forwarded_{0};
  std::atomic<bool> cut_{false};
  std::atomic<std::uint64_t> data_forwarded_{0};
  std::atomic<std::uint64_t> frames_{0};
  std::atomic<std::uint64_t> data_frames_{0};
  // frame parser state (proxy thread only)
  unsigned char header_[3] = {};
  std::size_t header_have_ = 0;
  std::size_t payload_left_ = 0;
  bool in_data_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace otter::test
