// otter — protocol v1 message codec (docs/protocol.md). Pure functions over caller-provided buffers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "otter/core/bytes.hpp"
#include "otter/core/error.hpp"
#include "otter/core/ports.hpp"

namespace otter::core {

constexpr std::uint8_t kProtocolVersion = 1;
constexpr std::uint16_t kDefaultPort = 12345;
constexpr std::size_t kFrameHeaderSize = 3;
constexpr std::size_t kNonceSize = 32;
constexpr std::size_t kMacSize = 32;
constexpr std::size_t kMaxNameLen = 255;
constexpr std::size_t kMaxIdLen = 64;
constexpr std::size_t kMaxControlPayload = 1024;
constexpr std::size_t kMaxDataPayload = 65535;
constexpr std::size_t kMaxErrorMessage = 255;
constexpr std::uint32_t kMinWindow = 1024;
constexpr std::uint8_t kMagic[4] = {'O', 'T', 'T', 'R'};

constexpr std::size_t kHelloFixed = 61;  // + id_len
constexpr std::size_t kPushFixed = 109;  // + name_len
constexpr std::size_t kStatFixed = 67;   // + name_len
constexpr std::size_t kReadyPayload = 40;
constexpr std::size_t kReadyPrefixPayload = 72;  ///< READY answering a PUSH with flags::digest_last
constexpr std::size_t kDigestPayload = 64;
constexpr std::size_t kAckPayload = 8;
constexpr std::size_t kDonePayload = 73;
constexpr std::size_t kStatResultPayload = 73;
constexpr std::size_t kErrorFixed = 3;  // + msg_len

enum class FrameType : std::uint8_t {
  hello = 0x01,
  ready = 0x02,
  ack = 0x03,
  done = 0x04,
  stat_result = 0x05,
  push = 0x10,
  stat = 0x11,
  data = 0x12,
  digest = 0x13,
  error = 0x7F,
};

namespace caps {
constexpr std::uint16_t file = 1u << 0;
constexpr std::uint16_t firmware = 1u << 1;
constexpr std::uint16_t resume = 1u << 2;
constexpr std::uint16_t stat = 1u << 3;
constexpr std::uint16_t reboot = 1u << 4;
constexpr std::uint16_t digest_last = 1u << 5;  ///< accepts the content's SHA-256 after the data (DIGEST frame)
}  // namespace caps

namespace flags {
constexpr std::uint8_t reboot = 1u << 0;
constexpr std::uint8_t digest_last = 1u << 1;  ///< sha256 is all zeros; the SHA-256 follows the data in DIGEST
constexpr std::uint8_t restart = 1u << 2;      ///< discard any partial copy of the name, start from offset 0
constexpr std::uint8_t known = reboot | digest_last | restart;
}  // namespace flags

enum class FwState : std::uint8_t { unknown = 0, valid = 1, pending_verify = 2 };

// MAC labels (ASCII, no terminator).
constexpr char kLabelRequest[] = "otter/1 request";
constexpr char kLabelReady[] = "otter/1 ready";
constexpr char kLabelDone[] = "otter/1 done";
constexpr char kLabelStat[] = "otter/1 stat";
constexpr char kLabelDigest[] = "otter/1 digest";

struct Hello {
  std::uint8_t version = kProtocolVersion;
  std::uint16_t caps = 0;
  FwState fw_state = FwState::unknown;
  std::uint32_t window = 0;
  std::uint64_t max_size = 0;
  std::uint64_t free = 0;
  std::uint8_t nonce[kNonceSize] = {};
  ByteView id;  ///< points into the decoded buffer (decode) or the caller's string (encode)
};

struct PushRequest {
  std::uint8_t version = kProtocolVersion;
  std::uint8_t client_nonce[kNonceSize] = {};
  Kind kind = Kind::file;
  std::uint8_t flags = 0;
  std::uint64_t size = 0;
  std::uint8_t sha256[kHashSize] = {};
  ByteView name;
  std::uint8_t mac[kMacSize] = {};
};

struct StatRequest {
  std::uint8_t version = kProtocolVersion;
  std::uint8_t client_nonce[kNonceSize] = {};
  ByteView name;
  std::uint8_t mac[kMacSize] = {};
};

struct Ready {
  std::uint64_t offset = 0;
  /// Only in the READY answering a PUSH with flags::digest_last (72-byte payload): SHA-256 of the `offset` bytes
  /// the device holds (32 zero bytes when offset is 0).
  bool has_prefix = false;
  std::uint8_t prefix_sha256[kHashSize] = {};
  std::uint8_t mac[kMacSize] = {};
};

/// DIGEST (pusher -> device): the content's SHA-256, after the last DATA byte of a flags::digest_last PUSH.
struct Digest {
  std::uint8_t sha256[kHashSize] = {};
  std::uint8_t mac[kMacSize] = {};
};

struct Done {
  std::uint64_t size = 0;
  std::uint8_t sha256[kHashSize] = {};
  std::uint8_t rebooting = 0;
  std::uint8_t mac[kMacSize] = {};
};

struct StatResult {
  std::uint8_t exists = 0;
  std::uint64_t size = 0;
  std::uint8_t sha256[kHashSize] = {};
  std::uint8_t mac[kMacSize] = {};
};

struct ErrorMsg {
  ErrorCode code = ErrorCode::internal;
  ByteView message;
};

struct FrameHeader {
  FrameType type;
  std::uint16_t length;
};

/// Writes a 3-byte frame header.
void encode_header(FrameType type, std::uint16_t length, std::uint8_t out[kFrameHeaderSize]);
/// Parses a 3-byte frame header; PROTOCOL for an unknown type.
Result<FrameHeader> decode_header(const std::uint8_t in[kFrameHeaderSize]);

// Encoders write a whole frame (header + payload) into out and return its size, or 0 if cap is too small or a
// field is out of range (id/name/message too long). MAC fields are written as given: compute them first with
// the *_mac helpers below (for PUSH/STAT the MAC covers the payload before it: use encode_*_payload_prefix).
std::size_t encode_hello(const Hello& m, std::uint8_t* out, std::size_t cap);
std::size_t encode_push(const PushRequest& m, std::uint8_t* out, std::size_t cap);
std::size_t encode_stat(const StatRequest& m, std::uint8_t* out, std::size_t cap);
std::size_t encode_ready(const Ready& m, std::uint8_t* out, std::size_t cap);
std::size_t encode_ack(std::uint64_t offset, std::uint8_t* out, std::size_t cap);
std::size_t encode_digest(const Digest& m, std::uint8_t* out, std::size_t cap);
std::size_t encode_done(const Done& m, std::uint8_t* out, std::size_t cap);
std::size_t encode_stat_result(const StatResult& m, std::uint8_t* out, std::size_t cap);
/// The message is truncated to kMaxErrorMessage bytes.
std::size_t encode_error(ErrorCode code, ByteView message, std::uint8_t* out, std::size_t cap);

// Decoders take a payload (without header) and validate lengths exactly; views point into `payload`.
Result<Hello> decode_hello(ByteView payload);
Result<PushRequest> decode_push(ByteView payload);
Result<StatRequest> decode_stat(ByteView payload);
/// Accepts both READY forms (40 bytes, or 72 with the prefix digest: has_prefix tells which was received).
Result<Ready> decode_ready(ByteView payload);
Result<std::uint64_t> decode_ack(ByteView payload);
Result<Digest> decode_digest(ByteView payload);
Result<Done> decode_done(ByteView payload);
Result<StatResult> decode_stat_result(ByteView payload);
Result<ErrorMsg> decode_error(ByteView payload);

// MACs (protocol.md section 3). `hello_payload` is the HELLO payload as sent; `request_without_mac` is the
// PUSH/STAT payload minus its trailing 32-byte MAC. False if the crypto backend failed (fail the session).
[[nodiscard]] bool request_mac(CryptoPort& crypto, ByteView key, ByteView hello_payload, ByteView request_without_mac,
                               std::uint8_t out[kMacSize]);
[[nodiscard]] bool ready_mac(CryptoPort& crypto, ByteView key, const std::uint8_t request_mac[kMacSize],
                             std::uint64_t offset, std::uint8_t out[kMacSize]);
/// The 72-byte READY's MAC: it also covers `prefix_sha256` (after the offset).
[[nodiscard]] bool ready_mac(CryptoPort& crypto, ByteView key, const std::uint8_t request_mac[kMacSize],
                             std::uint64_t offset, const std::uint8_t prefix_sha256[kHashSize],
                             std::uint8_t out[kMacSize]);
[[nodiscard]] bool digest_mac(CryptoPort& crypto, ByteView key, const std::uint8_t request_mac[kMacSize],
                              const std::uint8_t sha256[kHashSize], std::uint8_t out[kMacSize]);
[[nodiscard]] bool done_mac(CryptoPort& crypto, ByteView key, const std::uint8_t request_mac[kMacSize],
                            std::uint64_t size, const std::uint8_t sha256[kHashSize], std::uint8_t rebooting,
                            std::uint8_t out[kMacSize]);
[[nodiscard]] bool stat_mac(CryptoPort& crypto, ByteView key, const std::uint8_t request_mac[kMacSize],
                            std::uint8_t exists, std::uint64_t size, const std::uint8_t sha256[kHashSize],
                            std::uint8_t out[kMacSize]);

}  // namespace otter::core
