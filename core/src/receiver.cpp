// otter — device-side protocol state machine (docs/protocol.md, section 4 "Device").
#include "otter/core/receiver.hpp"

#include <cstring>

#include "otter/core/name.hpp"

namespace otter::core {
namespace {

constexpr std::uint16_t kKnownCaps =
    caps::file | caps::firmware | caps::resume | caps::stat | caps::reboot | caps::digest_last;
constexpr std::uint64_t kNoSizeLimit = ~std::uint64_t{0};

// Offsets inside the PUSH / STAT payloads (protocol.md 3.2, 3.3).
constexpr std::size_t kPushKindAt = 33;
constexpr std::size_t kPushNameLenAt = 75;
constexpr std::size_t kPushNameAt = 77;
constexpr std::size_t kStatNameLenAt = 33;
constexpr std::size_t kStatNameAt = 35;

std::size_t min_size(std::size_t a, std::size_t b) { return a < b ? a : b; }

constexpr std::uint32_t kMaxAckInterval = 256 * 1024;

// A port error as a wire code: the ports use wire codes; anything else is the device's own fault.
ErrorCode wire_code(const Error& e) { return is_wire_error(e.code) ? e.code : ErrorCode::internal; }
const char* message_of(const Error& e) { return e.message != nullptr ? e.message : ""; }

}  // namespace

Receiver::Receiver(const ReceiverConfig& cfg, StoragePort& storage, CryptoPort& crypto, ReceiverObserver* observer)
    : cfg_(cfg), storage_(storage), crypto_(crypto), observer_(observer) {
  if (cfg_.window < kMinWindow) cfg_.window = kMinWindow;
  // At the latest every window/4 bytes (flow control), and at least every 256 KiB (progress with big windows).
  ack_every_ = cfg_.window / 4 < kMaxAckInterval ? cfg_.window / 4 : kMaxAckInterval;
}

void Receiver::start(std::uint64_t now_ms) {
  if (state_ != State::idle) return;
  now_ms_ = now_ms;
  last_activity_ms_ = now_ms;
  state_ = State::await_request;

  Hello h;
  h.caps = static_cast<std::uint16_t>(cfg_.caps & kKnownCaps);
  h.fw_state = cfg_.fw_state;
  h.window = cfg_.window;
  h.max_size = cfg_.max_size != 0 ? cfg_.max_size : kNoSizeLimit;
  h.free = storage_.free_space();
  h.id = cfg_.device_id;
  if (!crypto_.random(h.nonce, kNonceSize)) {
    fail(ErrorCode::internal, "random generator failed");
    return;
  }
  compact_output();
  std::uint8_t* frame = out_ + out_len_;
  const std::size_t n = encode_hello(h, frame, kOutputBufferSize - out_len_);
  if (n == 0) {
    fail(ErrorCode::internal, "device id must be 1..64 bytes");
    return;
  }
  hello_len_ = n - kFrameHeaderSize;
  std::memcpy(hello_, frame + kFrameHeaderSize, hello_len_);
  out_len_ += n;
}

std::size_t Receiver::feed(const std::uint8_t* data, std::size_t n, std::uint64_t now_ms) {
  now_ms_ = now_ms;
  if (state_ != State::await_request && state_ != State::receiving) return 0;
  if (n == 0) return 0;
  last_activity_ms_ = now_ms;
  std::size_t i = 0;
  // Back-pressure: nothing is consumed while output is pending, so output never needs more than one step's room.
  while (i < n && out_pos_ == out_len_ && (state_ == State::await_request || state_ == State::receiving)) {
    if (data_remaining_ > 0) {
      i += stream_data(data + i, n - i);
      continue;
    }
    if (in_len_ < kFrameHeaderSize) {
      in_[in_len_++] = data[i++];
      if (in_len_ == kFrameHeaderSize) on_header();
      continue;
    }
    const std::size_t total = kFrameHeaderSize + get_u16(in_ + 1);
    const std::size_t take = min_size(total - in_len_, n - i);
    std::memcpy(in_ + in_len_, data + i, take);
    in_len_ += take;
    i += take;
    if (in_len_ == total) {
      handle_control();
      in_len_ = 0;
    }
  }
  return i;
}

ByteView Receiver::output() const { return ByteView(out_ + out_pos_, out_len_ - out_pos_); }

void Receiver::output_consumed(std::size_t n) {
  out_pos_ += min_size(n, out_len_ - out_pos_);
  if (out_pos_ == out_len_) {
    out_pos_ = 0;
    out_len_ = 0;
    if (state_ == State::closing) state_ = State::closed;
  }
}

void Receiver::tick(std::uint64_t now_ms) {
  now_ms_ = now_ms;
  if (state_ == State::await_request || state_ == State::receiving) {
    if (now_ms >= last_activity_ms_ && now_ms - last_activity_ms_ > cfg_.idle_timeout_ms)
      fail(ErrorCode::timeout, "peer silent for longer than the idle timeout");
  } else if (state_ == State::closing) {
    // The peer does not take our last words: give up on them rather than hold the connection forever.
    if (now_ms >= closing_since_ms_ && now_ms - closing_since_ms_ > cfg_.idle_timeout_ms) {
      out_pos_ = 0;
      out_len_ = 0;
      state_ = State::closed;
    }
  }
}

void Receiver::peer_closed() {
  if (transfer_open_) close_transfer(Disposition::interrupt);
  if (state_ == State::idle || state_ == State::await_request || state_ == State::receiving) {
    result_ = ErrorCode::connection_closed;
    if (observer_ != nullptr) observer_->on_error(result_, "peer closed the connection");
  }
  state_ = State::closed;
  out_pos_ = 0;
  out_len_ = 0;
  in_len_ = 0;
  data_remaining_ = 0;
}

bool Receiver::finished() const {
  return state_ == State::closed || (state_ == State::closing && out_pos_ == out_len_);
}

// --- internals ---------------------------------------------------------------------------------------------------

void Receiver::fail(ErrorCode code, const char* message, Disposition disposition) {
  if (state_ == State::closing || state_ == State::closed) return;
  result_ = code;
  if (transfer_open_) close_transfer(disposition);
  compact_output();
  const std::size_t n =
      encode_error(code, ByteView(message, std::strlen(message)), out_ + out_len_, kOutputBufferSize - out_len_);
  out_len_ += n;  // 0 if it did not fit (cannot happen: output is drained before every step)
  data_remaining_ = 0;
  in_len_ = 0;
  enter_closing();
  if (observer_ != nullptr) observer_->on_error(code, message);
}

void Receiver::close_transfer(Disposition disposition) {
  transfer_open_ = false;
  // Without the RESUME capability a partial copy is never used again: do not keep it.
  if (disposition == Disposition::interrupt && (cfg_.caps & caps::resume) != 0) {
    storage_.suspend();
  } else {
    storage_.discard();
  }
}

void Receiver::enter_closing() {
  closing_since_ms_ = now_ms_;
  state_ = out_pos_ == out_len_ ? State::closed : State::closing;
}

void Receiver::compact_output() {
  if (out_pos_ == 0) return;
  std::memmove(out_, out_ + out_pos_, out_len_ - out_pos_);
  out_len_ -= out_pos_;
  out_pos_ = 0;
}

bool Receiver::queued(std::size_t n) {
  if (n == 0) {
    fail(ErrorCode::internal, "output buffer overflow");
    return false;
  }
  out_len_ += n;
  return true;
}

void Receiver::on_header() {
  const Result<FrameHeader> h = decode_header(in_);
  if (!h) {
    fail(ErrorCode::protocol, "unknown frame type");
    return;
  }
  const std::size_t len = h->length;
  if (h->type == FrameType::data) {
    if (state_ != State::receiving) {
      fail(ErrorCode::protocol, "DATA before an accepted PUSH");
      return;
    }
    if (len == 0) {
      fail(ErrorCode::protocol, "empty DATA frame");
      return;
    }
    if (len > size_ - received_) {
      fail(ErrorCode::protocol, "more DATA than the announced size");
      return;
    }
    data_remaining_ = len;
    in_len_ = 0;
    return;
  }
  bool allowed = h->type == FrameType::error;
  if (state_ == State::await_request) {
    allowed = allowed || h->type == FrameType::push || (h->type == FrameType::stat && (cfg_.caps & caps::stat) != 0);
  } else if (h->type == FrameType::digest) {
    // DIGEST only after the last DATA byte of a DIGEST_LAST push.
    allowed = state_ == State::receiving && digest_last_ && received_ == size_;
  }
  if (!allowed) {
    fail(ErrorCode::protocol, "frame not allowed in this state");
    return;
  }
  if (len > kMaxControlPayload) {
    fail(ErrorCode::protocol, "control frame too long");
    return;
  }
  if (len == 0) {
    handle_control();
    in_len_ = 0;
  }
}

void Receiver::handle_control() {
  const ByteView payload(in_ + kFrameHeaderSize, in_len_ - kFrameHeaderSize);
  switch (static_cast<FrameType>(in_[0])) {
    case FrameType::push:
      handle_push(payload);
      break;
    case FrameType::stat:
      handle_stat(payload);
      break;
    case FrameType::digest:
      handle_digest(payload);
      break;
    case FrameType::error:
      handle_peer_error(payload);
      break;
    default:
      fail(ErrorCode::protocol, "frame not allowed in this state");
      break;
  }
}

bool Receiver::check_request_mac(ByteView payload) {
  const std::uint8_t* mac = payload.data + payload.size - kMacSize;
  std::uint8_t expected[kMacSize];
  if (!request_mac(crypto_, cfg_.key, ByteView(hello_, hello_len_), ByteView(payload.data, payload.size - kMacSize),
                   expected)) {
    fail(ErrorCode::internal, "HMAC failed");
    return false;
  }
  if (!equal_ct(expected, mac, kMacSize)) {
    fail(ErrorCode::auth_failed, "request authentication failed");
    return false;
  }
  std::memcpy(request_mac_, mac, kMacSize);
  return true;
}

void Receiver::handle_push(ByteView payload) {
  // Order matters: nothing about the name, kind or size is looked at before the MAC verifies.
  if (payload.size >= 1 && payload.data[0] != kProtocolVersion) {
    fail(ErrorCode::unsupported_version, "request version not supported");
    return;
  }
  if (payload.size < kPushFixed || payload.size != kPushFixed + get_u16(payload.data + kPushNameLenAt)) {
    fail(ErrorCode::protocol, "PUSH length mismatch");
    return;
  }
  if (!check_request_mac(payload)) return;

  const ByteView name(payload.data + kPushNameAt, get_u16(payload.data + kPushNameLenAt));
  const Result<void> valid = validate_name(name);
  if (!valid) {
    fail(ErrorCode::bad_name, message_of(valid.error()));
    return;
  }
  const std::uint8_t kind = payload.data[kPushKindAt];
  const bool kind_ok = (kind == static_cast<std::uint8_t>(Kind::file) && (cfg_.caps & caps::file) != 0) ||
                       (kind == static_cast<std::uint8_t>(Kind::firmware) && (cfg_.caps & caps::firmware) != 0);
  if (!kind_ok) {
    fail(ErrorCode::unsupported_kind, "this device does not accept that kind");
    return;
  }
  const Result<PushRequest> req = decode_push(payload);
  if (!req) {
    fail(wire_code(req.error()), message_of(req.error()));
    return;
  }
  if ((req->flags & ~flags::known) != 0) {
    fail(ErrorCode::protocol, "unknown request flags");
    return;
  }
  const bool digest_last = (req->flags & flags::digest_last) != 0;
  if (digest_last && (cfg_.caps & caps::digest_last) == 0) {
    fail(ErrorCode::protocol, "this device needs the SHA-256 in the request (no DIGEST_LAST)");
    return;
  }
  if (digest_last) {
    std::uint8_t any = 0;
    for (const std::uint8_t b : req->sha256) any = static_cast<std::uint8_t>(any | b);
    if (any != 0) {
      fail(ErrorCode::protocol, "a DIGEST_LAST request carries a zero SHA-256");
      return;
    }
  }
  if (cfg_.max_size != 0 && req->size > cfg_.max_size) {
    fail(ErrorCode::too_large, "artifact is larger than the device accepts");
    return;
  }

  std::memcpy(name_, name.data, name.size);
  name_len_ = name.size;
  std::memcpy(sha256_, req->sha256, kHashSize);
  kind_ = req->kind;
  flags_ = req->flags;
  digest_last_ = digest_last;
  size_ = req->size;

  Sha256& hasher = crypto_.sha256();
  hasher.reset();
  Result<std::uint64_t> held = storage_.begin(name, kind_, size_, sha256_, hasher);
  if (!held) {
    fail(wire_code(held.error()), message_of(held.error()));
    return;
  }
  transfer_open_ = true;
  if (*held != 0 && ((cfg_.caps & caps::resume) == 0 || (flags_ & flags::restart) != 0)) {
    // A device without RESUME always starts from 0, and RESTART asks for 0: drop what the port kept, open afresh.
    storage_.discard();
    transfer_open_ = false;
    hasher.reset();
    held = storage_.begin(name, kind_, size_, sha256_, hasher);
    if (!held) {
      fail(wire_code(held.error()), message_of(held.error()));
      return;
    }
    transfer_open_ = true;
    if (*held != 0) {
      fail(ErrorCode::internal, "storage kept a partial copy after discard", Disposition::discard);
      return;
    }
  }
  if (*held > size_) {
    fail(ErrorCode::internal, "storage holds more than the announced size", Disposition::discard);
    return;
  }
  if (size_ - *held > storage_.free_space()) {
    // An empty partial copy is worth nothing; bytes already held are kept for when space is freed.
    fail(ErrorCode::no_space, "not enough free space on the device",
         *held == 0 ? Disposition::discard : Disposition::interrupt);
    return;
  }

  Ready ready;
  ready.offset = *held;
  bool mac_ok = false;
  if (digest_last_) {
    // The pusher checks that the held bytes are a prefix of its content before it goes on from them.
    ready.has_prefix = true;
    if (*held != 0) hasher.peek(ready.prefix_sha256);
    mac_ok = ready_mac(crypto_, cfg_.key, request_mac_, ready.offset, ready.prefix_sha256, ready.mac);
  } else {
    mac_ok = ready_mac(crypto_, cfg_.key, request_mac_, ready.offset, ready.mac);
  }
  if (!mac_ok) {
    fail(ErrorCode::internal, "HMAC failed");
    return;
  }
  compact_output();
  if (!queued(encode_ready(ready, out_ + out_len_, kOutputBufferSize - out_len_))) return;
  state_ = State::receiving;
  received_ = *held;
  last_ack_ = *held;
  if (observer_ != nullptr) observer_->on_begin(name, kind_, size_, received_);
  if (received_ == size_ && !digest_last_) finish_transfer();
}

void Receiver::handle_stat(ByteView payload) {
  if (payload.size >= 1 && payload.data[0] != kProtocolVersion) {
    fail(ErrorCode::unsupported_version, "request version not supported");
    return;
  }
  if (payload.size < kStatFixed || payload.size != kStatFixed + get_u16(payload.data + kStatNameLenAt)) {
    fail(ErrorCode::protocol, "STAT length mismatch");
    return;
  }
  if (!check_request_mac(payload)) return;

  const ByteView name(payload.data + kStatNameAt, get_u16(payload.data + kStatNameLenAt));
  const Result<void> valid = validate_name(name);
  if (!valid) {
    fail(ErrorCode::bad_name, message_of(valid.error()));
    return;
  }
  Sha256& hasher = crypto_.sha256();
  hasher.reset();
  const Result<FileStat> st = storage_.stat(name, hasher);
  if (!st) {
    fail(wire_code(st.error()), message_of(st.error()));
    return;
  }
  StatResult sr;
  sr.exists = st->exists ? 1 : 0;
  if (st->exists) {
    sr.size = st->size;
    std::memcpy(sr.sha256, st->sha256, kHashSize);
  }
  if (!stat_mac(crypto_, cfg_.key, request_mac_, sr.exists, sr.size, sr.sha256, sr.mac)) {
    fail(ErrorCode::internal, "HMAC failed");
    return;
  }
  compact_output();
  if (!queued(encode_stat_result(sr, out_ + out_len_, kOutputBufferSize - out_len_))) return;
  result_ = ErrorCode::ok;
  enter_closing();
}

void Receiver::handle_digest(ByteView payload) {
  const Result<Digest> d = decode_digest(payload);
  if (!d) {
    fail(ErrorCode::protocol, message_of(d.error()));
    return;
  }
  std::uint8_t expected[kMacSize];
  if (!digest_mac(crypto_, cfg_.key, request_mac_, d->sha256, expected)) {
    fail(ErrorCode::internal, "HMAC failed");
    return;
  }
  if (!equal_ct(expected, d->mac, kMacSize)) {
    // Content under an unauthenticated digest cannot be trusted for a resume either.
    fail(ErrorCode::auth_failed, "DIGEST authentication failed", Disposition::discard);
    return;
  }
  std::memcpy(sha256_, d->sha256, kHashSize);
  finish_transfer();
}

void Receiver::handle_peer_error(ByteView payload) {
  const Result<ErrorMsg> e = decode_error(payload);
  const ErrorCode code = e && is_wire_error(e->code) ? e->code : ErrorCode::protocol;
  result_ = code;
  if (transfer_open_) close_transfer(Disposition::interrupt);
  enter_closing();
  if (observer_ != nullptr) observer_->on_error(code, "the pusher sent ERROR");
}

std::size_t Receiver::stream_data(const std::uint8_t* data, std::size_t n) {
  const std::size_t take = min_size(n, data_remaining_);
  const Result<void> w = storage_.write(data, take);
  if (!w) {
    // The partial copy may now hold a torn write: do not keep it.
    fail(wire_code(w.error()), message_of(w.error()), Disposition::discard);
    return take;
  }
  crypto_.sha256().update(data, take);
  received_ += take;
  data_remaining_ -= take;
  if (observer_ != nullptr) observer_->on_progress(received_, size_);
  after_data();
  return take;
}

void Receiver::after_data() {
  if (received_ != last_ack_ && (received_ - last_ack_ >= ack_every_ || received_ == size_)) {
    compact_output();
    if (!queued(encode_ack(received_, out_ + out_len_, kOutputBufferSize - out_len_))) return;
    last_ack_ = received_;
  }
  if (received_ == size_ && !digest_last_) finish_transfer();
}

void Receiver::finish_transfer() {
  std::uint8_t digest[kHashSize];
  crypto_.sha256().finish(digest);
  if (!equal_ct(digest, sha256_, kHashSize)) {
    fail(ErrorCode::hash_mismatch, "content does not match its SHA-256", Disposition::discard);
    return;
  }
  Done done;
  done.size = size_;
  std::memcpy(done.sha256, digest, kHashSize);
  const bool reboot = (flags_ & flags::reboot) != 0 && (cfg_.caps & caps::reboot) != 0;
  done.rebooting = reboot ? 1 : 0;
  if (!done_mac(crypto_, cfg_.key, request_mac_, done.size, done.sha256, done.rebooting, done.mac)) {
    fail(ErrorCode::internal, "HMAC failed");
    return;
  }
  // commit() ends the transfer whether it succeeds or not (the port unlocks the name either way).
  transfer_open_ = false;
  const Result<void> c = storage_.commit();
  if (!c) {
    fail(wire_code(c.error()), message_of(c.error()));
    return;
  }
  compact_output();
  if (!queued(encode_done(done, out_ + out_len_, kOutputBufferSize - out_len_))) return;
  reboot_ = reboot;
  result_ = ErrorCode::ok;
  enter_closing();
  if (observer_ != nullptr) observer_->on_committed(ByteView(name_, name_len_), kind_, reboot);
}

}  // namespace otter::core
