// otter — the pusher-side protocol state machine. Bytes in -> bytes out. No heap, no OS.
//
// The pusher never copies content: when data_ready() > 0 the driver sends a DATA frame header
// (encode_header(FrameType::data, len, hdr)) followed by `len` content bytes from data_offset(), then calls
// data_sent(len). Driving it (one Pusher per connection):
//   Pusher p(params, crypto);
//   loop:
//     send p.output() (control frames: PUSH/STAT) then p.output_consumed(n)
//     while (len = p.data_ready()) > 0: send header + content[p.data_offset() .. +len), p.data_sent(len)
//     read device bytes -> p.feed(bytes, n, now)   (always consumes everything)
//     p.tick(now); on EOF/error: p.peer_closed()
//   until p.finished(): p.error() == ok means the device confirmed (DONE or STAT_RESULT with a valid MAC).
//
// With params.digest_last (the driver has not hashed the content), three more steps are the driver's:
//   p.needs_sha256():       the device does not offer DIGEST_LAST: hash the whole content, p.set_sha256(d)
//   p.needs_prefix_check(): the device holds resume_offset() bytes: hash content[0, resume_offset()) and call
//                           p.prefix_checked(d) (a mismatch fails with RESUME_MISMATCH: push again with RESTART)
//   p.needs_digest():       every DATA byte is sent: p.set_digest(SHA-256 of the whole content)
#pragma once

#include <cstddef>
#include <cstdint>

#include "otter/core/codec.hpp"
#include "otter/core/ports.hpp"

namespace otter::core {

enum class Operation : std::uint8_t { push, stat };

struct PushParams {
  ByteView key;
  Operation op = Operation::push;
  ByteView name;  ///< must stay valid for the Pusher's lifetime
  Kind kind = Kind::file;
  std::uint8_t flags = 0;
  std::uint64_t size = 0;
  std::uint8_t sha256[kHashSize] = {};
  /// The content's SHA-256 is not known yet (sha256 is ignored): send it after the data if the device offers
  /// caps::digest_last, else ask the driver for it before the request (needs_sha256).
  bool digest_last = false;
  std::uint32_t chunk_size = 16384;  ///< DATA payload size, 1..65535
  std::uint32_t idle_timeout_ms = 30000;
};

class Pusher {
 public:
  enum class State : std::uint8_t {
    await_hello,
    need_sha256,  ///< digest_last, but the device wants the SHA-256 in the request: set_sha256()
    await_ready,
    verify_prefix,  ///< DIGEST_LAST resume: prefix_checked() with the SHA-256 of the first resume_offset() bytes
    sending,
    need_digest,  ///< DIGEST_LAST: all data sent, set_digest()
    await_done,
    succeeded,
    failed
  };

  Pusher(const PushParams& params, CryptoPort& crypto);

  /// Consumes device bytes (always all of them).
  std::size_t feed(const std::uint8_t* data, std::size_t n, std::uint64_t now_ms);
  [[nodiscard]] ByteView output() const;
  void output_consumed(std::size_t n);

  /// Payload bytes that may go in the next DATA frame now (0 = none: window full, control output pending, or not
  /// sending).
  [[nodiscard]] std::uint32_t data_ready() const;
  /// Content offset of the next DATA byte.
  [[nodiscard]] std::uint64_t data_offset() const { return sent_; }
  void data_sent(std::uint32_t len);

  [[nodiscard]] bool needs_sha256() const { return state_ == State::need_sha256; }
  void set_sha256(const std::uint8_t sha256[kHashSize]);
  [[nodiscard]] bool needs_prefix_check() const { return state_ == State::verify_prefix; }
  void prefix_checked(const std::uint8_t prefix_sha256[kHashSize]);
  [[nodiscard]] bool needs_digest() const { return state_ == State::need_digest; }
  void set_digest(const std::uint8_t sha256[kHashSize]);
  /// The request went out with flags::digest_last.
  [[nodiscard]] bool digest_last_used() const { return (request_flags_ & flags::digest_last) != 0; }

  void tick(std::uint64_t now_ms);
  void peer_closed();

  [[nodiscard]] State state() const { return state_; }
  [[nodiscard]] bool finished() const { return state_ == State::succeeded || state_ == State::failed; }
  [[nodiscard]] ErrorCode error() const { return error_; }
  /// The device's ERROR message, or a local explanation. NUL-terminated.
  [[nodiscard]] const char* error_message() const { return error_msg_; }

  [[nodiscard]] const Hello& hello() const { return hello_; }  ///< valid after await_hello; id points inside
  [[nodiscard]] std::uint64_t resume_offset() const { return resume_offset_; }
  [[nodiscard]] std::uint64_t acked() const { return acked_; }
  [[nodiscard]] const Done& done() const { return done_; }
  [[nodiscard]] const StatResult& stat_result() const { return stat_; }

 private:
  void fail(ErrorCode code, const char* message);
  void fail_with_device_message(ErrorCode code, ByteView message);
  void on_header();
  void handle_frame();
  void on_hello(ByteView payload);
  void after_data_complete();
  void send_request();
  void on_ready(ByteView payload);
  void on_ack(ByteView payload);
  void on_done(ByteView payload);
  void on_stat_result(ByteView payload);

  PushParams p_;
  CryptoPort& crypto_;
  State state_ = State::await_hello;
  ErrorCode error_ = ErrorCode::ok;
  char error_msg_[kMaxErrorMessage + 1] = {};
  std::uint64_t last_activity_ms_ = 0;
  bool clock_started_ = false;

  std::uint8_t in_[kFrameHeaderSize + kMaxControlPayload] = {};
  std::size_t in_len_ = 0;

  std::uint8_t out_[kFrameHeaderSize + kMaxControlPayload] = {};
  std::size_t out_len_ = 0;
  std::size_t out_pos_ = 0;

  std::uint8_t hello_payload_[kHelloFixed + kMaxIdLen] = {};
  std::size_t hello_len_ = 0;
  Hello hello_;
  std::uint8_t request_mac_[kMacSize] = {};
  std::uint8_t request_flags_ = 0;
  std::uint8_t device_prefix_[kHashSize] = {};
  std::uint64_t resume_offset_ = 0;
  std::uint64_t sent_ = 0;
  std::uint64_t acked_ = 0;
  Done done_;
  StatResult stat_;
};

}  // namespace otter::core
