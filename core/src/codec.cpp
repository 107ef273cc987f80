#include "otter/core/codec.hpp"

#include <cstring>

namespace otter::core {
namespace {

ByteView label(const char* s, std::size_t n_with_nul) { return ByteView(s, n_with_nul - 1); }

bool known_type(std::uint8_t t) {
  switch (static_cast<FrameType>(t)) {
    case FrameType::hello:
    case FrameType::ready:
    case FrameType::ack:
    case FrameType::done:
    case FrameType::stat_result:
    case FrameType::push:
    case FrameType::stat:
    case FrameType::data:
    case FrameType::digest:
    case FrameType::error:
      return true;
  }
  return false;
}

// Writes header; returns pointer to the payload or nullptr if the frame does not fit.
std::uint8_t* begin_frame(FrameType type, std::size_t payload, std::uint8_t* out, std::size_t cap) {
  if (payload > 0xFFFF || kFrameHeaderSize + payload > cap) return nullptr;
  encode_header(type, static_cast<std::uint16_t>(payload), out);
  return out + kFrameHeaderSize;
}

}  // namespace

void encode_header(FrameType type, std::uint16_t length, std::uint8_t out[kFrameHeaderSize]) {
  out[0] = static_cast<std::uint8_t>(type);
  put_u16(out + 1, length);
}

Result<FrameHeader> decode_header(const std::uint8_t in[kFrameHeaderSize]) {
  if (!known_type(in[0])) return fail(ErrorCode::protocol, "unknown frame type");
  return FrameHeader{static_cast<FrameType>(in[0]), get_u16(in + 1)};
}

std::size_t encode_hello(const Hello& m, std::uint8_t* out, std::size_t cap) {
  if (m.id.size < 1 || m.id.size > kMaxIdLen) return 0;
  const std::size_t len = kHelloFixed + m.id.size;
  std::uint8_t* p = begin_frame(FrameType::hello, len, out, cap);
  if (p == nullptr) return 0;
  std::memcpy(p, kMagic, 4);
  p[4] = m.version;
  put_u16(p + 5, m.caps);
  p[7] = static_cast<std::uint8_t>(m.fw_state);
  put_u32(p + 8, m.window);
  put_u64(p + 12, m.max_size);
  put_u64(p + 20, m.free);
  std::memcpy(p + 28, m.nonce, kNonceSize);
  p[60] = static_cast<std::uint8_t>(m.id.size);
  std::memcpy(p + 61, m.id.data, m.id.size);
  return kFrameHeaderSize + len;
}

Result<Hello> decode_hello(ByteView in) {
  if (in.size < 4 || std::memcmp(in.data, kMagic, 4) != 0) return fail(ErrorCode::not_otter_device, "bad magic");
  if (in.size < 5) return fail(ErrorCode::protocol, "HELLO too short");
  Hello m;
  m.version = in.data[4];
  // A future version may change the rest of HELLO: only the version is read before checking it.
  if (m.version != kProtocolVersion) return fail(ErrorCode::unsupported_version, "device speaks another version");
  if (in.size < kHelloFixed) return fail(ErrorCode::protocol, "HELLO too short");
  const std::uint8_t* p = in.data;
  m.caps = get_u16(p + 5);
  m.fw_state = static_cast<FwState>(p[7]);
  m.window = get_u32(p + 8);
  m.max_size = get_u64(p + 12);
  m.free = get_u64(p + 20);
  std::memcpy(m.nonce, p + 28, kNonceSize);
  const std::size_t id_len = p[60];
  if (id_len < 1 || id_len > kMaxIdLen) return fail(ErrorCode::protocol, "HELLO id length out of range");
  if (in.size != kHelloFixed + id_len) return fail(ErrorCode::protocol, "HELLO length mismatch");
  if (m.window < kMinWindow) return fail(ErrorCode::protocol, "HELLO window too small");
  m.id = ByteView(p + 61, id_len);
  return m;
}

std::size_t encode_push(const PushRequest& m, std::uint8_t* out, std::size_t cap) {
  if (m.name.size > kMaxControlPayload - kPushFixed) return 0;
  const std::size_t len = kPushFixed + m.name.size;
  std::uint8_t* p = begin_frame(FrameType::push, len, out, cap);
  if (p == nullptr) return 0;
  p[0] = m.version;
  std::memcpy(p + 1, m.client_nonce, kNonceSize);
  p[33] = static_cast<std::uint8_t>(m.kind);
  p[34] = m.flags;
  put_u64(p + 35, m.size);
  std::memcpy(p + 43, m.sha256, kHashSize);
  put_u16(p + 75, static_cast<std::uint16_t>(m.name.size));
  if (m.name.size != 0) std::memcpy(p + 77, m.name.data, m.name.size);
  std::memcpy(p + 77 + m.name.size, m.mac, kMacSize);
  return kFrameHeaderSize + len;
}

Result<PushRequest> decode_push(ByteView in) {
  if (in.size >= 1 && in.data[0] != kProtocolVersion)
    return fail(ErrorCode::unsupported_version, "request version not supported");
  if (in.size < kPushFixed) return fail(ErrorCode::protocol, "PUSH too short");
  const std::uint8_t* p = in.data;
  PushRequest m;
  m.version = p[0];
  std::memcpy(m.client_nonce, p + 1, kNonceSize);
  if (p[33] > 1) return fail(ErrorCode::unsupported_kind, "unknown kind");
  m.kind = static_cast<Kind>(p[33]);
  m.flags = p[34];
  m.size = get_u64(p + 35);
  std::memcpy(m.sha256, p + 43, kHashSize);
  const std::size_t name_len = get_u16(p + 75);
  if (in.size != kPushFixed + name_len) return fail(ErrorCode::protocol, "PUSH length mismatch");
  m.name = ByteView(p + 77, name_len);
  std::memcpy(m.mac, p + 77 + name_len, kMacSize);
  return m;
}

std::size_t encode_stat(const StatRequest& m, std::uint8_t* out, std::size_t cap) {
  if (m.name.size > kMaxControlPayload - kStatFixed) return 0;
  const std::size_t len = kStatFixed + m.name.size;
  std::uint8_t* p = begin_frame(FrameType::stat, len, out, cap);
  if (p == nullptr) return 0;
  p[0] = m.version;
  std::memcpy(p + 1, m.client_nonce, kNonceSize);
  put_u16(p + 33, static_cast<std::uint16_t>(m.name.size));
  if (m.name.size != 0) std::memcpy(p + 35, m.name.data, m.name.size);
  std::memcpy(p + 35 + m.name.size, m.mac, kMacSize);
  return kFrameHeaderSize + len;
}

Result<StatRequest> decode_stat(ByteView in) {
  if (in.size >= 1 && in.data[0] != kProtocolVersion)
    return fail(ErrorCode::unsupported_version, "request version not supported");
  if (in.size < kStatFixed) return fail(ErrorCode::protocol, "STAT too short");
  const std::uint8_t* p = in.data;
  StatRequest m;
  m.version = p[0];
  std::memcpy(m.client_nonce, p + 1, kNonceSize);
  const std::size_t name_len = get_u16(p + 33);
  if (in.size != kStatFixed + name_len) return fail(ErrorCode::protocol, "STAT length mismatch");
  m.name = ByteView(p + 35, name_len);
  std::memcpy(m.mac, p + 35 + name_len, kMacSize);
  return m;
}

std::size_t encode_ready(const Ready& m, std::uint8_t* out, std::size_t cap) {
  const std::size_t len = m.has_prefix ? kReadyPrefixPayload : kReadyPayload;
  std::uint8_t* p = begin_frame(FrameType::ready, len, out, cap);
  if (p == nullptr) return 0;
  put_u64(p, m.offset);
  std::size_t at = 8;
  if (m.has_prefix) {
    std::memcpy(p + at, m.prefix_sha256, kHashSize);
    at += kHashSize;
  }
  std::memcpy(p + at, m.mac, kMacSize);
  return kFrameHeaderSize + len;
}

Result<Ready> decode_ready(ByteView in) {
  if (in.size != kReadyPayload && in.size != kReadyPrefixPayload) {
    return fail(ErrorCode::protocol, "READY length mismatch");
  }
  Ready m;
  m.offset = get_u64(in.data);
  std::size_t at = 8;
  m.has_prefix = in.size == kReadyPrefixPayload;
  if (m.has_prefix) {
    std::memcpy(m.prefix_sha256, in.data + at, kHashSize);
    at += kHashSize;
  }
  std::memcpy(m.mac, in.data + at, kMacSize);
  return m;
}

std::size_t encode_digest(const Digest& m, std::uint8_t* out, std::size_t cap) {
  std::uint8_t* p = begin_frame(FrameType::digest, kDigestPayload, out, cap);
  if (p == nullptr) return 0;
  std::memcpy(p, m.sha256, kHashSize);
  std::memcpy(p + kHashSize, m.mac, kMacSize);
  return kFrameHeaderSize + kDigestPayload;
}

Result<Digest> decode_digest(ByteView in) {
  if (in.size != kDigestPayload) return fail(ErrorCode::protocol, "DIGEST length mismatch");
  Digest m;
  std::memcpy(m.sha256, in.data, kHashSize);
  std::memcpy(m.mac, in.data + kHashSize, kMacSize);
  return m;
}

std::size_t encode_ack(std::uint64_t offset, std::uint8_t* out, std::size_t cap) {
  std::uint8_t* p = begin_frame(FrameType::ack, kAckPayload, out, cap);
  if (p == nullptr) return 0;
  put_u64(p, offset);
  return kFrameHeaderSize + kAckPayload;
}

Result<std::uint64_t> decode_ack(ByteView in) {
  if (in.size != kAckPayload) return fail(ErrorCode::protocol, "ACK length mismatch");
  return get_u64(in.data);
}

std::size_t encode_done(const Done& m, std::uint8_t* out, std::size_t cap) {
  std::uint8_t* p = begin_frame(FrameType::done, kDonePayload, out, cap);
  if (p == nullptr) return 0;
  put_u64(p, m.size);
  std::memcpy(p + 8, m.sha256, kHashSize);
  p[40] = m.rebooting;
  std::memcpy(p + 41, m.mac, kMacSize);
  return kFrameHeaderSize + kDonePayload;
}

Result<Done> decode_done(ByteView in) {
  if (in.size != kDonePayload) return fail(ErrorCode::protocol, "DONE length mismatch");
  Done m;
  m.size = get_u64(in.data);
  std::memcpy(m.sha256, in.data + 8, kHashSize);
  m.rebooting = in.data[40];
  std::memcpy(m.mac, in.data + 41, kMacSize);
  return m;
}

std::size_t encode_stat_result(const StatResult& m, std::uint8_t* out, std::size_t cap) {
  std::uint8_t* p = begin_frame(FrameType::stat_result, kStatResultPayload, out, cap);
  if (p == nullptr) return 0;
  p[0] = m.exists;
  put_u64(p + 1, m.size);
  std::memcpy(p + 9, m.sha256, kHashSize);
  std::memcpy(p + 41, m.mac, kMacSize);
  return kFrameHeaderSize + kStatResultPayload;
}

Result<StatResult> decode_stat_result(ByteView in) {
  if (in.size != kStatResultPayload) return fail(ErrorCode::protocol, "STAT_RESULT length mismatch");
  StatResult m;
  m.exists = in.data[0];
  m.size = get_u64(in.data + 1);
  std::memcpy(m.sha256, in.data + 9, kHashSize);
  std::memcpy(m.mac, in.data + 41, kMacSize);
  return m;
}

std::size_t encode_error(ErrorCode code, ByteView message, std::uint8_t* out, std::size_t cap) {
  const std::size_t n = message.size > kMaxErrorMessage ? kMaxErrorMessage : message.size;
  std::uint8_t* p = begin_frame(FrameType::error, kErrorFixed + n, out, cap);
  if (p == nullptr) return 0;
  put_u16(p, static_cast<std::uint16_t>(code));
  p[2] = static_cast<std::uint8_t>(n);
  if (n != 0) std::memcpy(p + 3, message.data, n);
  return kFrameHeaderSize + kErrorFixed + n;
}

Result<ErrorMsg> decode_error(ByteView in) {
  if (in.size < kErrorFixed) return fail(ErrorCode::protocol, "ERROR too short");
  const std::size_t n = in.data[2];
  if (in.size != kErrorFixed + n) return fail(ErrorCode::protocol, "ERROR length mismatch");
  ErrorMsg m;
  m.code = static_cast<ErrorCode>(get_u16(in.data));
  m.message = ByteView(in.data + 3, n);
  return m;
}

bool request_mac(CryptoPort& crypto, ByteView key, ByteView hello_payload, ByteView request_without_mac,
                 std::uint8_t out[kMacSize]) {
  const ByteView parts[] = {label(kLabelRequest, sizeof kLabelRequest), hello_payload, request_without_mac};
  return crypto.hmac_sha256(key, parts, 3, out);
}

bool ready_mac(CryptoPort& crypto, ByteView key, const std::uint8_t request_mac[kMacSize], std::uint64_t offset,
               const std::uint8_t* prefix_sha256, std::uint8_t out[kMacSize]) {
  std::uint8_t off[8];
  put_u64(off, offset);
  const ByteView parts[] = {label(kLabelReady, sizeof kLabelReady), ByteView(request_mac, kMacSize), ByteView(off, 8),
                            ByteView(prefix_sha256, prefix_sha256 != nullptr ? kHashSize : 0)};
  return crypto.hmac_sha256(key, parts, prefix_sha256 != nullptr ? 4 : 3, out);
}

bool ready_mac(CryptoPort& crypto, ByteView key, const std::uint8_t request_mac[kMacSize], std::uint64_t offset,
               std::uint8_t out[kMacSize]) {
  return ready_mac(crypto, key, request_mac, offset, nullptr, out);
}

bool digest_mac(CryptoPort& crypto, ByteView key, const std::uint8_t request_mac[kMacSize],
                const std::uint8_t sha256[kHashSize], std::uint8_t out[kMacSize]) {
  const ByteView parts[] = {label(kLabelDigest, sizeof kLabelDigest), ByteView(request_mac, kMacSize),
                            ByteView(sha256, kHashSize)};
  return crypto.hmac_sha256(key, parts, 3, out);
}

bool done_mac(CryptoPort& crypto, ByteView key, const std::uint8_t request_mac[kMacSize], std::uint64_t size,
              const std::uint8_t sha256[kHashSize], std::uint8_t rebooting, std::uint8_t out[kMacSize]) {
  std::uint8_t sz[8];
  put_u64(sz, size);
  const ByteView parts[] = {label(kLabelDone, sizeof kLabelDone), ByteView(request_mac, kMacSize), ByteView(sz, 8),
                            ByteView(sha256, kHashSize), ByteView(&rebooting, 1)};
  return crypto.hmac_sha256(key, parts, 5, out);
}

bool stat_mac(CryptoPort& crypto, ByteView key, const std::uint8_t request_mac[kMacSize], std::uint8_t exists,
              std::uint64_t size, const std::uint8_t sha256[kHashSize], std::uint8_t out[kMacSize]) {
  std::uint8_t sz[8];
  put_u64(sz, size);
  const ByteView parts[] = {label(kLabelStat, sizeof kLabelStat), ByteView(request_mac, kMacSize),
                            ByteView(&exists, 1), ByteView(sz, 8), ByteView(sha256, kHashSize)};
  return crypto.hmac_sha256(key, parts, 5, out);
}

}  // namespace otter::core
