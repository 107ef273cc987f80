// otter — pusher-side protocol state machine (docs/protocol.md, section 4 "Pusher").
#include "otter/core/pusher.hpp"

#include <cstring>

namespace otter::core {
namespace {

std::size_t min_size(std::size_t a, std::size_t b) { return a < b ? a : b; }
std::uint64_t min_u64(std::uint64_t a, std::uint64_t b) { return a < b ? a : b; }

// Largest name each request can carry inside a control frame (kMaxControlPayload).
constexpr std::size_t kMaxPushName = kMaxControlPayload - kPushFixed;
constexpr std::size_t kMaxStatName = kMaxControlPayload - kStatFixed;

}  // namespace

Pusher::Pusher(const PushParams& params, CryptoPort& crypto) : p_(params), crypto_(crypto) {
  const std::size_t max_name = p_.op == Operation::push ? kMaxPushName : kMaxStatName;
  if (p_.name.size > max_name) {
    fail(ErrorCode::invalid_argument, "name is too long to encode in a request");
  } else if (p_.name.size != 0 && p_.name.data == nullptr) {
    fail(ErrorCode::invalid_argument, "name has no data");
  } else if (p_.op == Operation::push && (p_.chunk_size == 0 || p_.chunk_size > kMaxDataPayload)) {
    fail(ErrorCode::invalid_argument, "chunk size must be 1..65535");
  }
}

std::size_t Pusher::feed(const std::uint8_t* data, std::size_t n, std::uint64_t now_ms) {
  if (n == 0) return 0;
  last_activity_ms_ = now_ms;
  clock_started_ = true;
  std::size_t i = 0;
  while (i < n && !finished()) {
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
      handle_frame();
      in_len_ = 0;
    }
  }
  return n;  // bytes after the end of the session are dropped
}

ByteView Pusher::output() const { return ByteView(out_ + out_pos_, out_len_ - out_pos_); }

void Pusher::output_consumed(std::size_t n) {
  out_pos_ += min_size(n, out_len_ - out_pos_);
  if (out_pos_ == out_len_) {
    out_pos_ = 0;
    out_len_ = 0;
  }
}

std::uint32_t Pusher::data_ready() const {
  if (state_ != State::sending || out_pos_ != out_len_) return 0;
  const std::uint64_t in_flight = sent_ - acked_;
  if (in_flight >= hello_.window) return 0;
  std::uint64_t n = min_u64(p_.chunk_size, p_.size - sent_);
  n = min_u64(n, hello_.window - in_flight);
  return static_cast<std::uint32_t>(n);
}

void Pusher::data_sent(std::uint32_t len) {
  if (len == 0 || finished()) return;
  if (len > data_ready()) {
    fail(ErrorCode::invalid_argument, "data_sent() beyond data_ready()");
    return;
  }
  sent_ += len;
  if (sent_ == p_.size) after_data_complete();
}

void Pusher::after_data_complete() { state_ = digest_last_used() ? State::need_digest : State::await_done; }

void Pusher::set_sha256(const std::uint8_t sha256[kHashSize]) {
  if (state_ != State::need_sha256) return;
  std::memcpy(p_.sha256, sha256, kHashSize);
  send_request();
}

void Pusher::prefix_checked(const std::uint8_t prefix_sha256[kHashSize]) {
  if (state_ != State::verify_prefix) return;
  if (std::memcmp(prefix_sha256, device_prefix_, kHashSize) != 0) {
    fail(ErrorCode::resume_mismatch, "the device's partial copy is not a prefix of this content");
    return;
  }
  if (sent_ == p_.size) {
    after_data_complete();
  } else {
    state_ = State::sending;
  }
}

void Pusher::set_digest(const std::uint8_t sha256[kHashSize]) {
  if (state_ != State::need_digest) return;
  Digest d;
  std::memcpy(d.sha256, sha256, kHashSize);
  if (!digest_mac(crypto_, p_.key, request_mac_, d.sha256, d.mac)) {
    fail(ErrorCode::internal, "HMAC failed");
    return;
  }
  const std::size_t n = encode_digest(d, out_ + out_len_, sizeof out_ - out_len_);
  if (n == 0) {
    fail(ErrorCode::internal, "output buffer overflow");
    return;
  }
  out_len_ += n;
  std::memcpy(p_.sha256, sha256, kHashSize);  // DONE must name this digest
  state_ = State::await_done;
}

void Pusher::tick(std::uint64_t now_ms) {
  if (finished()) return;
  if (!clock_started_) {
    clock_started_ = true;
    last_activity_ms_ = now_ms;
    return;
  }
  if (now_ms >= last_activity_ms_ && now_ms - last_activity_ms_ > p_.idle_timeout_ms)
    fail(ErrorCode::timeout, "device silent for longer than the idle timeout");
}

void Pusher::peer_closed() {
  if (!finished()) fail(ErrorCode::connection_closed, "device closed the connection before the operation ended");
}

// --- internals ---------------------------------------------------------------------------------------------------

void Pusher::fail(ErrorCode code, const char* message) {
  if (finished()) return;
  state_ = State::failed;
  error_ = code;
  const std::size_t n = min_size(std::strlen(message), kMaxErrorMessage);
  std::memcpy(error_msg_, message, n);
  error_msg_[n] = '\0';
  out_pos_ = 0;
  out_len_ = 0;
}

void Pusher::fail_with_device_message(ErrorCode code, ByteView message) {
  if (finished()) return;
  // An ERROR is never success, and only wire codes are the device's to send.
  if (!is_wire_error(code)) code = ErrorCode::protocol;
  fail(code, "");
  const std::size_t n = min_size(message.size, kMaxErrorMessage);
  for (std::size_t i = 0; i < n; ++i) {
    const char c = static_cast<char>(message.data[i]);
    error_msg_[i] = c == '\0' ? '?' : c;  // keep the C string whole
  }
  error_msg_[n] = '\0';
}

void Pusher::on_header() {
  const std::uint8_t type = in_[0];
  const std::size_t len = get_u16(in_ + 1);
  if (state_ == State::await_hello && type != static_cast<std::uint8_t>(FrameType::hello) &&
      type != static_cast<std::uint8_t>(FrameType::error)) {
    fail(ErrorCode::not_otter_device, "peer did not send an otter HELLO");
    return;
  }
  if (!decode_header(in_)) {
    fail(ErrorCode::protocol, "unknown frame type from the device");
    return;
  }
  if (len > kMaxControlPayload) {
    fail(state_ == State::await_hello ? ErrorCode::not_otter_device : ErrorCode::protocol,
         "frame from the device is too long");
    return;
  }
  if (len == 0) {
    handle_frame();
    in_len_ = 0;
  }
}

void Pusher::handle_frame() {
  const ByteView payload(in_ + kFrameHeaderSize, in_len_ - kFrameHeaderSize);
  const auto type = static_cast<FrameType>(in_[0]);
  if (type == FrameType::error) {
    const Result<ErrorMsg> e = decode_error(payload);
    if (!e) {
      fail(ErrorCode::protocol, "malformed ERROR frame from the device");
      return;
    }
    fail_with_device_message(e->code, e->message);
    return;
  }
  switch (state_) {
    case State::await_hello:
      on_hello(payload);  // on_header let only HELLO and ERROR through
      return;
    case State::await_ready:
      if (p_.op == Operation::push && type == FrameType::ready) {
        on_ready(payload);
        return;
      }
      if (p_.op == Operation::stat && type == FrameType::stat_result) {
        on_stat_result(payload);
        return;
      }
      break;
    case State::need_sha256:
    case State::verify_prefix:
      break;
    case State::sending:
    case State::need_digest:
      if (type == FrameType::ack) {
        on_ack(payload);
        return;
      }
      if (type == FrameType::done) {
        fail(ErrorCode::protocol, "DONE before all data was sent");
        return;
      }
      break;
    case State::await_done:
      if (type == FrameType::ack) {
        on_ack(payload);
        return;
      }
      if (type == FrameType::done) {
        on_done(payload);
        return;
      }
      break;
    case State::succeeded:
    case State::failed:
      return;
  }
  fail(ErrorCode::protocol, "unexpected frame from the device");
}

void Pusher::on_hello(ByteView payload) {
  const Result<Hello> h = decode_hello(payload);
  if (!h) {
    fail(h.error().code, h.error().message);
    return;
  }
  // decode_hello checked payload.size == kHelloFixed + id_len <= sizeof hello_payload_.
  std::memcpy(hello_payload_, payload.data, payload.size);
  hello_len_ = payload.size;
  hello_ = *h;
  hello_.id = ByteView(hello_payload_ + kHelloFixed, h->id.size);
  if (p_.op == Operation::push && p_.digest_last) {
    if ((hello_.caps & caps::digest_last) == 0) {
      state_ = State::need_sha256;  // the driver hashes, then set_sha256() sends the request
      return;
    }
    request_flags_ = static_cast<std::uint8_t>(p_.flags | flags::digest_last);
    std::memset(p_.sha256, 0, kHashSize);
  } else {
    request_flags_ = static_cast<std::uint8_t>(p_.flags & ~flags::digest_last);
  }
  send_request();
}

void Pusher::send_request() {
  std::uint8_t nonce[kNonceSize];
  if (!crypto_.random(nonce, kNonceSize)) {
    fail(ErrorCode::internal, "random generator failed");
    return;
  }
  std::size_t n = 0;
  if (p_.op == Operation::push) {
    PushRequest r;
    std::memcpy(r.client_nonce, nonce, kNonceSize);
    r.kind = p_.kind;
    r.flags = request_flags_;
    r.size = p_.size;
    std::memcpy(r.sha256, p_.sha256, kHashSize);
    r.name = p_.name;
    n = encode_push(r, out_, sizeof out_);
  } else {
    StatRequest r;
    std::memcpy(r.client_nonce, nonce, kNonceSize);
    r.name = p_.name;
    n = encode_stat(r, out_, sizeof out_);
  }
  if (n == 0) {
    fail(ErrorCode::invalid_argument, "name is too long to encode in a request");
    return;
  }
  // The MAC field was encoded as zeros; it covers the payload before it.
  std::uint8_t* payload = out_ + kFrameHeaderSize;
  const std::size_t payload_len = n - kFrameHeaderSize;
  if (!request_mac(crypto_, p_.key, ByteView(hello_payload_, hello_len_), ByteView(payload, payload_len - kMacSize),
                   request_mac_)) {
    fail(ErrorCode::internal, "HMAC failed");
    return;
  }
  std::memcpy(payload + payload_len - kMacSize, request_mac_, kMacSize);
  out_pos_ = 0;
  out_len_ = n;
  state_ = State::await_ready;
}

void Pusher::on_ready(ByteView payload) {
  const Result<Ready> r = decode_ready(payload);
  if (!r) {
    fail(r.error().code, r.error().message);
    return;
  }
  if (r->has_prefix != digest_last_used()) {
    fail(ErrorCode::protocol, digest_last_used() ? "READY without the prefix digest a DIGEST_LAST push needs"
                                                 : "READY with a prefix digest the request did not ask for");
    return;
  }
  std::uint8_t expected[kMacSize];
  const bool mac_ok = r->has_prefix ? ready_mac(crypto_, p_.key, request_mac_, r->offset, r->prefix_sha256, expected)
                                    : ready_mac(crypto_, p_.key, request_mac_, r->offset, expected);
  if (!mac_ok) {
    fail(ErrorCode::internal, "HMAC failed");
    return;
  }
  if (!equal_ct(expected, r->mac, kMacSize)) {
    fail(ErrorCode::device_auth, "READY MAC is wrong: the device did not prove knowledge of the key");
    return;
  }
  if (r->offset > p_.size) {
    fail(ErrorCode::protocol, "READY offset is beyond the content size");
    return;
  }
  resume_offset_ = r->offset;
  sent_ = r->offset;
  acked_ = r->offset;
  if (digest_last_used() && r->offset != 0) {
    std::memcpy(device_prefix_, r->prefix_sha256, kHashSize);
    state_ = State::verify_prefix;
  } else if (sent_ == p_.size) {
    after_data_complete();
  } else {
    state_ = State::sending;
  }
}

void Pusher::on_ack(ByteView payload) {
  const Result<std::uint64_t> a = decode_ack(payload);
  if (!a) {
    fail(a.error().code, a.error().message);
    return;
  }
  if (*a < acked_) {
    fail(ErrorCode::protocol, "ACK offset went backwards");
    return;
  }
  if (*a > sent_) {
    fail(ErrorCode::protocol, "ACK offset is beyond the data sent");
    return;
  }
  acked_ = *a;
}

void Pusher::on_done(ByteView payload) {
  const Result<Done> d = decode_done(payload);
  if (!d) {
    fail(d.error().code, d.error().message);
    return;
  }
  std::uint8_t expected[kMacSize];
  if (!done_mac(crypto_, p_.key, request_mac_, d->size, d->sha256, d->rebooting, expected)) {
    fail(ErrorCode::internal, "HMAC failed");
    return;
  }
  if (!equal_ct(expected, d->mac, kMacSize)) {
    fail(ErrorCode::device_auth, "DONE MAC is wrong: the device did not prove knowledge of the key");
    return;
  }
  if (d->size != p_.size || std::memcmp(d->sha256, p_.sha256, kHashSize) != 0) {
    fail(ErrorCode::hash_mismatch, "the device committed content other than the request's");
    return;
  }
  done_ = *d;
  state_ = State::succeeded;
  error_ = ErrorCode::ok;
}

void Pusher::on_stat_result(ByteView payload) {
  const Result<StatResult> s = decode_stat_result(payload);
  if (!s) {
    fail(s.error().code, s.error().message);
    return;
  }
  std::uint8_t expected[kMacSize];
  if (!stat_mac(crypto_, p_.key, request_mac_, s->exists, s->size, s->sha256, expected)) {
    fail(ErrorCode::internal, "HMAC failed");
    return;
  }
  if (!equal_ct(expected, s->mac, kMacSize)) {
    fail(ErrorCode::device_auth, "STAT_RESULT MAC is wrong: the device did not prove knowledge of the key");
    return;
  }
  stat_ = *s;
  state_ = State::succeeded;
  error_ = ErrorCode::ok;
}

}  // namespace otter::core
