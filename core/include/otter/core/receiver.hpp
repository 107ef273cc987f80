// otter — the device-side protocol state machine. Bytes in -> bytes out + port calls. No heap, no OS.
//
// Driving it (one Receiver per connection):
//   Receiver r(cfg, storage, crypto);
//   r.start(now);                                  // queues HELLO
//   loop:
//     send r.output() to the socket, then r.output_consumed(n)
//     if r.finished(): close the socket (all output has been sent)
//     read bytes -> consumed = r.feed(bytes, n, now); keep the unconsumed rest for later (back-pressure: feed
//       consumes nothing while output() is not drained)
//     r.tick(now) periodically; on EOF or socket error: r.peer_closed()
#pragma once

#include <cstddef>
#include <cstdint>

#include "otter/core/codec.hpp"
#include "otter/core/ports.hpp"

namespace otter::core {

struct ReceiverConfig {
  ByteView key;        ///< pre-shared key (>= 16 bytes)
  ByteView device_id;  ///< 1..64 printable ASCII bytes
  std::uint16_t caps = caps::file | caps::resume | caps::stat;
  FwState fw_state = FwState::unknown;
  std::uint32_t window = 256 * 1024;
  std::uint64_t max_size = 0;  ///< 0 = limited only by free space
  std::uint32_t idle_timeout_ms = 30000;
};

/// Optional callbacks (progress UI, logging, the firmware's reboot). Default implementations do nothing.
class ReceiverObserver {
 public:
  virtual void on_begin(ByteView /*name*/, Kind /*kind*/, std::uint64_t /*size*/, std::uint64_t /*offset*/) {}
  virtual void on_progress(std::uint64_t /*received*/, std::uint64_t /*size*/) {}
  virtual void on_committed(ByteView /*name*/, Kind /*kind*/, bool /*reboot*/) {}
  virtual void on_error(ErrorCode /*code*/, const char* /*message*/) {}

 protected:
  ~ReceiverObserver() = default;
};

class Receiver {
 public:
  enum class State : std::uint8_t { idle, await_request, receiving, closing, closed };

  Receiver(const ReceiverConfig& cfg, StoragePort& storage, CryptoPort& crypto, ReceiverObserver* observer = nullptr);

  /// Generates the nonce and queues HELLO. Must be called once, first.
  void start(std::uint64_t now_ms);
  /// Consumes device input; returns how many bytes were consumed (may be < n under back-pressure or after the
  /// session ended).
  std::size_t feed(const std::uint8_t* data, std::size_t n, std::uint64_t now_ms);
  /// Bytes to send to the pusher (empty when nothing is pending).
  [[nodiscard]] ByteView output() const;
  void output_consumed(std::size_t n);
  /// Checks the idle timeout: a peer silent for longer than cfg.idle_timeout_ms gets ERROR TIMEOUT. A session whose
  /// final output (ERROR / DONE / STAT_RESULT) has not been taken for a further idle timeout is closed, dropping it.
  void tick(std::uint64_t now_ms);
  /// The transport closed or failed: suspends an open transfer (kept for resume).
  void peer_closed();

  [[nodiscard]] State state() const { return state_; }
  /// The session is over and all output has been handed out: close the connection.
  [[nodiscard]] bool finished() const;
  /// ok after DONE / STAT_RESULT; otherwise the error that ended the session.
  [[nodiscard]] ErrorCode result() const { return result_; }
  /// A committed PUSH carried the reboot flag and the device advertised caps::reboot.
  [[nodiscard]] bool reboot_requested() const { return reboot_; }
  [[nodiscard]] std::uint64_t received() const { return received_; }

  /// Bytes of state this object holds (for the memory budget in docs).
  static constexpr std::size_t kInputBufferSize = kFrameHeaderSize + kMaxControlPayload;
  static constexpr std::size_t kOutputBufferSize = 512;

 private:
  // What happens to an open transfer when the session ends with an error.
  enum class Disposition : std::uint8_t { interrupt, discard };

  void fail(ErrorCode code, const char* message, Disposition disposition = Disposition::interrupt);
  void close_transfer(Disposition disposition);
  void enter_closing();
  void compact_output();
  [[nodiscard]] bool queued(std::size_t n);
  void on_header();
  void handle_control();
  void handle_push(ByteView payload);
  void handle_stat(ByteView payload);
  void handle_digest(ByteView payload);
  void handle_peer_error(ByteView payload);
  [[nodiscard]] bool check_request_mac(ByteView payload);
  std::size_t stream_data(const std::uint8_t* data, std::size_t n);
  void after_data();
  void finish_transfer();

  ReceiverConfig cfg_;
  StoragePort& storage_;
  CryptoPort& crypto_;
  ReceiverObserver* observer_;

  State state_ = State::idle;
  ErrorCode result_ = ErrorCode::ok;
  bool reboot_ = false;
  bool transfer_open_ = false;

  std::uint64_t now_ms_ = 0;
  std::uint64_t last_activity_ms_ = 0;
  std::uint64_t closing_since_ms_ = 0;
  std::uint32_t ack_every_ = 0;  // min(window / 4, 256 KiB)

  // HELLO payload as sent (the request MAC covers it).
  std::uint8_t hello_[kHelloFixed + kMaxIdLen] = {};
  std::size_t hello_len_ = 0;

  // Input: frame header + control payload being assembled; DATA payloads are streamed, not buffered.
  std::uint8_t in_[kInputBufferSize] = {};
  std::size_t in_len_ = 0;
  std::size_t data_remaining_ = 0;  // bytes of the current DATA frame still to stream

  std::uint8_t out_[kOutputBufferSize] = {};
  std::size_t out_len_ = 0;
  std::size_t out_pos_ = 0;

  // The accepted PUSH.
  std::uint8_t request_mac_[kMacSize] = {};
  std::uint8_t sha256_[kHashSize] = {};
  Kind kind_ = Kind::file;
  std::uint8_t flags_ = 0;
  bool digest_last_ = false;  // flags::digest_last: the SHA-256 comes in DIGEST after the data
  std::uint64_t size_ = 0;
  std::uint64_t received_ = 0;
  std::uint64_t last_ack_ = 0;
  std::uint8_t name_[kMaxNameLen] = {};
  std::size_t name_len_ = 0;
};

}  // namespace otter::core
