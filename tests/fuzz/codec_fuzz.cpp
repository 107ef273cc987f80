// otter fuzzing — the protocol codec (core/src/codec.cpp). The first byte picks a frame type (or a whole stream of
// frames); the rest is decoded as that payload. Properties: no decoder reads outside its payload (ASan) or trips
// UB; every accepted payload re-encodes to exactly the same bytes (decode(encode(x)) == x for the wire form), and the
// encoder refuses nothing the decoder accepted.
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_check.hpp"
#include "otter/core/codec.hpp"

using namespace otter::core;

namespace {

/// The frame as re-encoded must be header(type, payload.size) + payload.
void check_roundtrip(FrameType type, ByteView payload, const std::uint8_t* out, std::size_t n) {
  // Control frames over kMaxControlPayload never reach a decoder (both state machines refuse the header first), and
  // the encoders refuse to build them.
  if (payload.size > kMaxControlPayload && n == 0) return;
  OTTER_FUZZ_CHECK(n == kFrameHeaderSize + payload.size);
  std::uint8_t hdr[kFrameHeaderSize];
  encode_header(type, static_cast<std::uint16_t>(payload.size), hdr);
  OTTER_FUZZ_CHECK(std::memcmp(out, hdr, kFrameHeaderSize) == 0);
  OTTER_FUZZ_CHECK(payload.size == 0 || std::memcmp(out + kFrameHeaderSize, payload.data, payload.size) == 0);
  auto h = decode_header(out);
  OTTER_FUZZ_CHECK(h && h->type == type && h->length == payload.size);
}

void decode_one(std::uint8_t selector, ByteView p) {
  // Room for any frame (the largest control frame is 3 + 1024; ERROR is capped at 3 + 3 + 255).
  static std::uint8_t out[kFrameHeaderSize + kMaxDataPayload];
  switch (selector % 8) {
    case 0:
      if (auto m = decode_hello(p)) {
        OTTER_FUZZ_CHECK(m->id.size >= 1 && m->id.size <= kMaxIdLen);
        OTTER_FUZZ_CHECK(m->id.data >= p.data && m->id.data + m->id.size <= p.data + p.size);
        check_roundtrip(FrameType::hello, p, out, encode_hello(*m, out, sizeof out));
      }
      break;
    case 1:
      if (auto m = decode_push(p)) {
        OTTER_FUZZ_CHECK(m->name.data >= p.data && m->name.data + m->name.size <= p.data + p.size);
        OTTER_FUZZ_CHECK(m->kind == Kind::file || m->kind == Kind::firmware);
        check_roundtrip(FrameType::push, p, out, encode_push(*m, out, sizeof out));
      }
      break;
    case 2:
      if (auto m = decode_stat(p)) {
        OTTER_FUZZ_CHECK(m->name.data >= p.data && m->name.data + m->name.size <= p.data + p.size);
        check_roundtrip(FrameType::stat, p, out, encode_stat(*m, out, sizeof out));
      }
      break;
    case 3:
      if (auto m = decode_ready(p)) check_roundtrip(FrameType::ready, p, out, encode_ready(*m, out, sizeof out));
      break;
    case 4:
      if (auto m = decode_ack(p)) check_roundtrip(FrameType::ack, p, out, encode_ack(*m, out, sizeof out));
      break;
    case 5:
      if (auto m = decode_done(p)) check_roundtrip(FrameType::done, p, out, encode_done(*m, out, sizeof out));
      break;
    case 6:
      if (auto m = decode_stat_result(p))
        check_roundtrip(FrameType::stat_result, p, out, encode_stat_result(*m, out, sizeof out));
      break;
    default:
      if (auto m = decode_error(p)) {
        OTTER_FUZZ_CHECK(m->message.size <= kMaxErrorMessage);
        check_roundtrip(FrameType::error, p, out, encode_error(m->code, m->message, out, sizeof out));
      }
      break;
  }
}

/// Every decoder on the payload of every complete frame of a stream (as a receiver or pusher would split it).
void decode_stream(const std::uint8_t* data, std::size_t size) {
  std::size_t i = 0;
  while (i + kFrameHeaderSize <= size) {
    auto h = decode_header(data + i);
    if (!h) return;
    if (i + kFrameHeaderSize + h->length > size) return;
    const ByteView payload(data + i + kFrameHeaderSize, h->length);
    // A copy of exactly the payload, so ASan sees any read past its end.
    std::vector<std::uint8_t> exact(payload.data, payload.data + payload.size);
    for (std::uint8_t s = 0; s < 8; ++s) decode_one(s, ByteView(exact.data(), exact.size()));
    i += kFrameHeaderSize + h->length;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  if (data[0] >= 0xF0) {
    decode_stream(data + 1, size - 1);
    return 0;
  }
  decode_one(data[0], ByteView(size > 1 ? data + 1 : nullptr, size - 1));
  return 0;
}
