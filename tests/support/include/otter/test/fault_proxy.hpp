// A one-connection TCP proxy that injects faults between a pusher (the client) and a device (the target):
//   - cut_after N: once N client -> target bytes went through, it closes both sides (the network "breaks"
//     mid-transfer; the target is closed first, so it sees EOF, then the client, which gets a reset if it still had
//     data on the way);
//   - corrupt_content_at K: every bit of the K-th content byte (counted over DATA payloads from the first DATA frame)
//     is flipped in flight: corruption that TCP's checksum did not catch, or a broken middlebox.
// Without faults it is a plain relay. Target -> client bytes pass untouched; a client's EOF is passed on as a
// half-close so the device's last frames still reach the client. The proxy parses the otter frames it forwards, so a
// test knows exactly how many content bytes got through. One thread, poll(2); nothing sleeps.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>

namespace otter::test {

struct ProxyFaults {
  std::optional<std::uint64_t> cut_after;           ///< client -> target bytes, then both sides are closed
  std::optional<std::uint64_t> corrupt_content_at;  ///< DATA content offset of the byte to flip

  static ProxyFaults cut(std::uint64_t after_bytes) {
    ProxyFaults f;
    f.cut_after = after_bytes;
    return f;
  }
  static ProxyFaults corrupt(std::uint64_t content_offset) {
    ProxyFaults f;
    f.corrupt_content_at = content_offset;
    return f;
  }
};

class FaultProxy {
 public:
  /// Listens on 127.0.0.1:<ephemeral>; serves the first connection only. Throws std::runtime_error on failure.
  FaultProxy(std::uint16_t target_port, ProxyFaults faults);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  /// Waits until the proxied connection is over (cut, or closed by both sides). False on timeout.
  bool wait_done(std::chrono::milliseconds timeout);
  /// Client -> target bytes forwarded so far.
  [[nodiscard]] std::uint64_t forwarded() const { return forwarded_.load(); }
  /// True if the proxy cut the connection at cut_after (rather than the sides closing first).
  [[nodiscard]] bool cut() const { return cut_.load(); }
  /// True once the byte at corrupt_content_at went through, flipped.
  [[nodiscard]] bool corrupted() const { return corrupted_.load(); }
  /// DATA payload bytes among the forwarded client -> target bytes (frames: type u8, length u16 BE, payload).
  [[nodiscard]] std::uint64_t data_forwarded() const { return data_forwarded_.load(); }
  /// Frames whose header was forwarded, and how many of them were DATA.
  [[nodiscard]] std::uint64_t frames_forwarded() const { return frames_.load(); }
  [[nodiscard]] std::uint64_t data_frames_forwarded() const { return data_frames_.load(); }

 private:
  void run();
  void relay(int client, int target);
  void inspect(char* data, std::size_t n);

  std::uint16_t target_port_;
  ProxyFaults faults_;
  int listen_fd_ = -1;
  int wake_rd_ = -1;
  int wake_wr_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<std::uint64_t> forwarded_{0};
  std::atomic<bool> cut_{false};
  std::atomic<bool> corrupted_{false};
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
