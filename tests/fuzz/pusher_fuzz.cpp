// otter fuzzing — the pusher state machine (core/src/pusher.cpp) fed by a hostile device.
//
// The input is a script: raw device bytes, and frames the harness builds (and signs with the key, so the fuzzer gets
// past authentication): HELLO with chosen fields, READY at a chosen offset, ACKs, DONE / STAT_RESULT (right or wrong
// content), ERROR, clock ticks, a cut connection. The driver sends every DATA frame the pusher allows, and with
// DIGEST_LAST (setup bit 16) does the hashing a driver owes: the SHA-256 before the request, the prefix check on
// resume (matching the READY's prefix or not, setup bit 32), the digest after the data.
//
// Properties: DATA never goes beyond the content size or before READY, and never more than the device's window
// beyond its last ACK; the pusher succeeds only after a DONE carrying a valid MAC over the request's exact size and
// SHA-256 (or, for STAT, a signed STAT_RESULT); it always ends (bounded); its error message is NUL-terminated; no
// UB, no access outside a buffer.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "fuzz_crypto.hpp"
#include "fuzz_input.hpp"
#include "otter/core/codec.hpp"
#include "otter/core/pusher.hpp"
#include "otter/ports/openssl_crypto.hpp"

using namespace otter;
using otter::core::ByteView;
using Bytes = std::vector<std::uint8_t>;

namespace {

const std::string kKey = "fuzz-device-key-0123456789";

using otter::fuzz::FuzzCrypto;

Bytes frame(const std::uint8_t* buf, std::size_t n) { return Bytes(buf, buf + n); }

struct Harness {
  core::PushParams params;
  FuzzCrypto crypto;
  core::Pusher* pusher = nullptr;
  Bytes request_mac;  // from the pusher's PUSH / STAT
  Bytes to_device;
  std::uint64_t max_ack = 0;      // highest ACK / READY offset given
  bool valid_final_sent = false;  // a DONE / STAT_RESULT the pusher may rightly accept
  bool prefix_matches = false;    // the driver's content agrees with what the device holds
  Bytes ready_prefix = Bytes(core::kHashSize, 0);

  void drain() {
    for (int guard = 0; guard < 100000; ++guard) {
      if (pusher->needs_sha256()) {
        OTTER_FUZZ_CHECK(params.digest_last);
        pusher->set_sha256(params.sha256);
        continue;
      }
      if (pusher->needs_prefix_check()) {
        OTTER_FUZZ_CHECK(pusher->digest_last_used() && pusher->resume_offset() > 0);
        Bytes mine = ready_prefix;
        if (!prefix_matches) mine[0] ^= 1;
        pusher->prefix_checked(mine.data());
        if (!prefix_matches) OTTER_FUZZ_CHECK(pusher->error() == ErrorCode::resume_mismatch);
        continue;
      }
      if (pusher->needs_digest()) {
        OTTER_FUZZ_CHECK(pusher->digest_last_used() && pusher->data_offset() == params.size);
        pusher->set_digest(params.sha256);
        continue;
      }
      const ByteView out = pusher->output();
      if (out.size != 0) {
        to_device.insert(to_device.end(), out.data, out.data + out.size);
        pusher->output_consumed(out.size);
        continue;
      }
      const std::uint32_t len = pusher->data_ready();
      if (len == 0) break;
      OTTER_FUZZ_CHECK(pusher->state() == core::Pusher::State::sending);  // only after a signed READY
      OTTER_FUZZ_CHECK(params.op == core::Operation::push);
      OTTER_FUZZ_CHECK(len <= params.chunk_size);
      OTTER_FUZZ_CHECK(pusher->data_offset() + len <= params.size);
      OTTER_FUZZ_CHECK(pusher->data_offset() + len - pusher->acked() <= pusher->hello().window);
      pusher->data_sent(len);
    }
    // The request's MAC (last 32 bytes of the first PUSH / STAT frame).
    if (request_mac.empty() && to_device.size() >= core::kFrameHeaderSize) {
      const std::size_t n = core::get_u16(to_device.data() + 1);
      if (to_device.size() >= core::kFrameHeaderSize + n && n >= core::kMacSize)
        request_mac.assign(to_device.begin() + static_cast<long>(core::kFrameHeaderSize + n - core::kMacSize),
                           to_device.begin() + static_cast<long>(core::kFrameHeaderSize + n));
    }
  }

  void feed(const Bytes& b, std::uint64_t now) {
    if (b.empty()) return;
    pusher->feed(b.data(), b.size(), now);
    drain();
  }

  [[nodiscard]] const std::uint8_t* rmac() const {
    static const std::uint8_t zero[core::kMacSize] = {};
    return request_mac.size() == core::kMacSize ? request_mac.data() : zero;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  Harness h;
  const std::uint8_t setup = in.u8();
  std::string name = "fw/app.bin";
  h.params.key = ByteView(kKey.data(), kKey.size());
  h.params.op = (setup & 1) ? core::Operation::stat : core::Operation::push;
  h.params.name = ByteView(name.data(), name.size());
  h.params.kind = (setup & 2) ? core::Kind::firmware : core::Kind::file;
  h.params.flags = (setup & 4) ? core::flags::reboot : 0;
  h.params.size = (setup & 8) ? 0 : 1 + in.u16();
  for (std::size_t i = 0; i < core::kHashSize; ++i) h.params.sha256[i] = static_cast<std::uint8_t>(i);
  h.params.chunk_size = 1 + in.u16() % 4096;
  h.params.idle_timeout_ms = 1000;
  h.params.digest_last = (setup & 16) != 0;  // the driver knows the SHA-256 all the same (params.sha256)
  h.prefix_matches = (setup & 32) != 0;
  core::Pusher p(h.params, h.crypto);
  h.pusher = &p;
  std::uint64_t now = 1;
  h.drain();

  std::uint8_t buf[core::kFrameHeaderSize + core::kMaxControlPayload];
  const ByteView key(kKey.data(), kKey.size());
  for (int ops = 0; ops < 64 && !in.empty() && !p.finished(); ++ops) {
    const std::uint8_t op = in.u8();
    switch (op % 9) {
      case 0:  // raw device bytes
        h.feed(in.bytes(in.u16() % 2048), now);
        break;
      case 1: {  // HELLO
        core::Hello m;
        m.caps = in.u16();
        m.fw_state = static_cast<core::FwState>(in.u8() % 3);
        m.window = static_cast<std::uint32_t>(in.u16()) * 64;
        m.max_size = in.u8() & 1 ? 0 : in.u64();
        m.free = in.u64();
        for (std::size_t i = 0; i < core::kNonceSize; ++i) m.nonce[i] = in.u8();
        const std::string id = in.str(in.u8() % 70);
        m.id = ByteView(id.data(), id.size());
        const std::size_t n = core::encode_hello(m, buf, sizeof buf);
        if (n != 0) h.feed(frame(buf, n), now);
        break;
      }
      case 2: {  // READY at an offset (signed)
        core::Ready m;
        const std::uint8_t v = in.u8();
        m.offset = v & 1 ? in.u64() : in.u16();
        m.has_prefix = (v & 2) != 0;  // the 72-byte form (DIGEST_LAST)
        for (auto& b : m.prefix_sha256) b = in.u8();
        h.ready_prefix.assign(m.prefix_sha256, m.prefix_sha256 + core::kHashSize);
        const bool mac_ok = m.has_prefix ? core::ready_mac(h.crypto, key, h.rmac(), m.offset, m.prefix_sha256, m.mac)
                                         : core::ready_mac(h.crypto, key, h.rmac(), m.offset, m.mac);
        if (!mac_ok) return 0;
        if (in.u8() & 1) m.mac[0] ^= 1;
        const std::size_t n = core::encode_ready(m, buf, sizeof buf);
        h.feed(frame(buf, n), now);
        if (p.state() == core::Pusher::State::sending || p.state() == core::Pusher::State::await_done)
          OTTER_FUZZ_CHECK(p.resume_offset() <= h.params.size);
        break;
      }
      case 3: {  // ACK
        const std::uint64_t at = in.u8() & 1 ? in.u64() : p.data_offset() - in.u8() % 4;
        const std::size_t n = core::encode_ack(at, buf, sizeof buf);
        h.feed(frame(buf, n), now);
        break;
      }
      case 4: {  // DONE (signed); right or wrong size / hash
        core::Done m;
        const std::uint8_t v = in.u8();
        m.size = (v & 1) ? in.u64() : h.params.size;
        std::memcpy(m.sha256, h.params.sha256, core::kHashSize);
        if (v & 2) m.sha256[in.u8() % core::kHashSize] ^= 1;
        m.rebooting = in.u8() & 1;
        if (!core::done_mac(h.crypto, key, h.rmac(), m.size, m.sha256, m.rebooting, m.mac)) return 0;
        const bool good_mac = !(v & 4);
        if (!good_mac) m.mac[in.u8() % core::kMacSize] ^= 0x80;
        if (good_mac && m.size == h.params.size && std::memcmp(m.sha256, h.params.sha256, core::kHashSize) == 0 &&
            h.request_mac.size() == core::kMacSize)
          h.valid_final_sent = true;
        const std::size_t n = core::encode_done(m, buf, sizeof buf);
        h.feed(frame(buf, n), now);
        break;
      }
      case 5: {  // STAT_RESULT (signed or not)
        core::StatResult m;
        m.exists = in.u8() & 1;
        m.size = in.u64();
        for (auto& b : m.sha256) b = in.u8();
        if (!core::stat_mac(h.crypto, key, h.rmac(), m.exists, m.size, m.sha256, m.mac)) return 0;
        const bool good_mac = !(in.u8() & 1);
        if (!good_mac) m.mac[0] ^= 1;
        if (good_mac && h.request_mac.size() == core::kMacSize) h.valid_final_sent = true;
        const std::size_t n = core::encode_stat_result(m, buf, sizeof buf);
        h.feed(frame(buf, n), now);
        break;
      }
      case 6: {  // ERROR
        const auto code = static_cast<ErrorCode>(in.u16());
        const std::string msg = in.str(in.u8());
        const std::size_t n = core::encode_error(code, ByteView(msg.data(), msg.size()), buf, sizeof buf);
        h.feed(frame(buf, n), now);
        break;
      }
      case 7:  // time passes
        now += static_cast<std::uint64_t>(in.u16()) * 4;
        p.tick(now);
        h.drain();
        break;
      default:
        p.peer_closed();
        break;
    }
    OTTER_FUZZ_CHECK(p.acked() <= p.data_offset());
    OTTER_FUZZ_CHECK(p.data_offset() <= h.params.size || h.params.op == core::Operation::stat);
  }
  if (std::getenv("OTTER_FUZZ_TRACE") != nullptr)  // what an input reaches
    std::fprintf(stderr, "pusher: state %d, error %u %s, sent %llu, acked %llu\n", static_cast<int>(p.state()),
                 static_cast<unsigned>(p.error()), p.error_message(),
                 static_cast<unsigned long long>(p.data_offset()), static_cast<unsigned long long>(p.acked()));
  if (p.state() == core::Pusher::State::succeeded) OTTER_FUZZ_CHECK(h.valid_final_sent);
  p.peer_closed();
  OTTER_FUZZ_CHECK(p.finished());
  OTTER_FUZZ_CHECK(std::strlen(p.error_message()) <= core::kMaxErrorMessage);
  if (p.error() == ErrorCode::ok) OTTER_FUZZ_CHECK(h.valid_final_sent);
  return 0;
}
