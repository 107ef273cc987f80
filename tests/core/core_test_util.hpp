// otter tests — helpers shared by the core's tests: hex, hashing, a configurable crypto port, frame splitting and a
// loop that wires a Pusher to a Receiver with random split sizes.
//
// The helpers' crypto backend (BackendCrypto, BackendSha256) is the OpenSSL port on hosts; with
// OTTER_TEST_CRYPTO_MBEDTLS (the microcontroller build, tests/mcu, which has no OpenSSL) it is the mbedTLS port.
// The host suite keeps OpenSSL, so there the mbedTLS port is checked against an independent implementation
// (ports/crypto_test.cpp, SessionTest.DeviceOnMbedTlsPusherOnOpenSsl).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "fake_storage.hpp"
#include "otter/core/codec.hpp"
#include "otter/core/pusher.hpp"
#include "otter/core/receiver.hpp"
#if defined(OTTER_TEST_CRYPTO_MBEDTLS)
#include "otter/ports/mbedtls_crypto.hpp"
#else
#include "otter/ports/openssl_crypto.hpp"
#endif

namespace otter::test {

#if defined(OTTER_TEST_CRYPTO_MBEDTLS)
using BackendCrypto = ports::MbedTlsCrypto;
using BackendSha256 = ports::MbedTlsSha256;
#else
using BackendCrypto = ports::OpenSslCrypto;
using BackendSha256 = ports::OpenSslSha256;
#endif

using core::ByteView;

inline ByteView view(const Bytes& b) { return ByteView(b.data(), b.size()); }
inline ByteView view(const std::string& s) { return ByteView(s.data(), s.size()); }
inline Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }
inline Bytes bytes_of(ByteView v) { return Bytes(v.data, v.data + v.size); }
inline std::string str_of(ByteView v) { return std::string(reinterpret_cast<const char*>(v.data), v.size); }

inline std::string hex(const std::uint8_t* p, std::size_t n, const char* sep = "") {
  static const char* const kDigits = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    if (i != 0) s += sep;
    s += kDigits[p[i] >> 4];
    s += kDigits[p[i] & 15];
  }
  return s;
}
inline std::string hex(const Bytes& b, const char* sep = "") { return hex(b.data(), b.size(), sep); }

inline Bytes unhex(const std::string& s) {
  Bytes out;
  int hi = -1;
  for (char c : s) {
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else
      continue;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(hi * 16 + v));
      hi = -1;
    }
  }
  return out;
}

inline Bytes sha256_of(const Bytes& b) {
  BackendSha256 h;
  h.update(b.data(), b.size());
  Bytes out(core::kHashSize);
  h.finish(out.data());
  return out;
}

inline Bytes random_bytes(std::mt19937_64& rng, std::size_t n) {
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

/// The backend's crypto port with knobs: scripted random() output and injected failures.
class TestCrypto final : public core::CryptoPort {
 public:
  core::Sha256& sha256() override { return inner_.sha256(); }
  bool hmac_sha256(ByteView key, const ByteView* parts, std::size_t n, std::uint8_t out[core::kHashSize]) override {
    ++hmacs;
    if (fail_hmac) return false;
    return inner_.hmac_sha256(key, parts, n, out);
  }
  bool random(std::uint8_t* out, std::size_t n) override {
    if (fail_random) return false;
    if (!scripted.empty()) {
      for (std::size_t i = 0; i < n; ++i) {
        out[i] = scripted.front();
        scripted.pop_front();
      }
      return true;
    }
    return inner_.random(out, n);
  }

  std::deque<std::uint8_t> scripted;  ///< random() returns these first
  bool fail_random = false;
  bool fail_hmac = false;
  int hmacs = 0;

 private:
  BackendCrypto inner_;
};

struct Frame {
  std::uint8_t type = 0;
  Bytes payload;
  Bytes raw;  ///< header + payload
};

/// Splits a stream into frames; a trailing incomplete frame is returned with `incomplete` set.
inline std::vector<Frame> split_frames(const Bytes& s, bool* incomplete = nullptr) {
  std::vector<Frame> out;
  std::size_t i = 0;
  while (i + core::kFrameHeaderSize <= s.size()) {
    const std::size_t len = core::get_u16(s.data() + i + 1);
    if (i + core::kFrameHeaderSize + len > s.size()) break;
    Frame f;
    f.type = s[i];
    f.payload.assign(s.begin() + static_cast<long>(i + 3), s.begin() + static_cast<long>(i + 3 + len));
    f.raw.assign(s.begin() + static_cast<long>(i), s.begin() + static_cast<long>(i + 3 + len));
    out.push_back(std::move(f));
    i += 3 + len;
  }
  if (incomplete != nullptr) *incomplete = i != s.size();
  return out;
}

inline Bytes frame(core::FrameType type, const Bytes& payload) {
  Bytes f(3);
  core::encode_header(type, static_cast<std::uint16_t>(payload.size()), f.data());
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

inline std::vector<std::uint64_t> ack_offsets(const Bytes& to_pusher) {
  std::vector<std::uint64_t> acks;
  for (const Frame& f : split_frames(to_pusher)) {
    if (f.type == static_cast<std::uint8_t>(core::FrameType::ack)) acks.push_back(core::get_u64(f.payload.data()));
  }
  return acks;
}

inline std::optional<core::ErrorMsg> find_error(const Bytes& stream, Bytes* storage) {
  for (const Frame& f : split_frames(stream)) {
    if (f.type == static_cast<std::uint8_t>(core::FrameType::error)) {
      *storage = f.payload;
      auto e = core::decode_error(view(*storage));
      if (e) return *e;
    }
  }
  return std::nullopt;
}

// --- a Pusher wired to a Receiver ---------------------------------------------------------------------------------

struct LinkOptions {
  std::uint64_t seed = 1;
  std::size_t max_split = 4096;                     ///< each output/feed step moves 1..max_split bytes
  std::uint64_t content_limit = ~std::uint64_t{0};  ///< cut the connection after this many DATA bytes
  bool cut_mid_frame = false;       ///< the frame crossing content_limit announces more bytes than arrive
  bool random_frame_sizes = false;  ///< DATA frames of random length 1..data_ready()
  /// The driver's duties for PushParams::digest_last (needs_sha256 / needs_prefix_check / needs_digest) are done
  /// with this content's SHA-256 instead of the pushed content's (a lying or confused pusher).
  const Bytes* digest_content = nullptr;
  std::uint64_t max_iterations = 50'000'000;
};

struct LinkResult {
  Bytes to_device;                  ///< every byte the receiver consumed
  Bytes to_pusher;                  ///< every byte the pusher was fed
  std::uint64_t content_bytes = 0;  ///< DATA payload bytes delivered to the receiver
  std::uint64_t max_in_flight = 0;  ///< max(sent - acked) seen at the pusher
  std::uint64_t data_frames = 0;
  bool cut = false;
  bool stalled = false;
};

/// Runs one connection to its end. `content` is the whole artifact. The clock advances 1 ms per step.
inline LinkResult run_link(core::Receiver& r, core::Pusher& p, const Bytes& content, const LinkOptions& o,
                           std::uint64_t& clock) {
  std::mt19937_64 rng(o.seed);
  auto pick = [&](std::size_t avail) {
    const std::size_t m = std::min(avail, o.max_split);
    return static_cast<std::size_t>(1 + rng() % m);
  };
  LinkResult res;
  Bytes p2d, d2p;  // in transit (may include bytes the receiver has not consumed yet)
  std::size_t p2d_pos = 0, d2p_pos = 0;
  bool device_closed = false, pusher_closed = false;
  std::uint64_t session_content = 0;

  r.start(clock);
  for (std::uint64_t iter = 0; iter < o.max_iterations; ++iter) {
    ++clock;
    bool progress = false;
    if (!device_closed) {
      const ByteView out = r.output();
      if (out.size != 0) {
        const std::size_t k = pick(out.size);
        d2p.insert(d2p.end(), out.data, out.data + k);
        r.output_consumed(k);
        progress = true;
      }
    }
    if (!pusher_closed && !res.cut) {
      // The driver's hashing duties (PushParams::digest_last).
      const Bytes& hashed = o.digest_content != nullptr ? *o.digest_content : content;
      if (p.needs_sha256()) {
        p.set_sha256(sha256_of(hashed).data());
        progress = true;
      } else if (p.needs_prefix_check()) {
        const auto n = static_cast<long>(std::min<std::uint64_t>(p.resume_offset(), hashed.size()));
        p.prefix_checked(sha256_of(Bytes(hashed.begin(), hashed.begin() + n)).data());
        progress = true;
      } else if (p.needs_digest()) {
        p.set_digest(sha256_of(hashed).data());
        progress = true;
      }
    }
    if (!pusher_closed && !res.cut) {
      const ByteView out = p.output();
      if (out.size != 0) {
        const std::size_t k = pick(out.size);
        p2d.insert(p2d.end(), out.data, out.data + k);
        p.output_consumed(k);
        progress = true;
      } else {
        std::uint32_t len;
        while (!res.cut && (len = p.data_ready()) > 0) {
          if (o.random_frame_sizes) len = static_cast<std::uint32_t>(1 + rng() % len);
          if (session_content >= o.content_limit) {
            res.cut = true;
            break;
          }
          const std::uint64_t room = o.content_limit - session_content;
          std::uint64_t deliver = len;
          if (room < len) {
            res.cut = true;
            deliver = room;
            if (!o.cut_mid_frame) len = static_cast<std::uint32_t>(room);
          }
          std::uint8_t hdr[3];
          core::encode_header(core::FrameType::data, static_cast<std::uint16_t>(len), hdr);
          p2d.insert(p2d.end(), hdr, hdr + 3);
          const auto at = static_cast<long>(p.data_offset());
          p2d.insert(p2d.end(), content.begin() + at, content.begin() + at + static_cast<long>(deliver));
          p.data_sent(len);
          session_content += deliver;
          ++res.data_frames;
          res.max_in_flight = std::max(res.max_in_flight, p.data_offset() - p.acked());
          progress = true;
        }
      }
    }
    if (!device_closed && p2d_pos < p2d.size()) {
      const std::size_t k = pick(p2d.size() - p2d_pos);
      const std::size_t c = r.feed(p2d.data() + p2d_pos, k, clock);
      res.to_device.insert(res.to_device.end(), p2d.begin() + static_cast<long>(p2d_pos),
                           p2d.begin() + static_cast<long>(p2d_pos + c));
      p2d_pos += c;
      progress = progress || c > 0;
    }
    if (!pusher_closed && d2p_pos < d2p.size()) {
      const std::size_t k = pick(d2p.size() - d2p_pos);
      p.feed(d2p.data() + d2p_pos, k, clock);
      res.to_pusher.insert(res.to_pusher.end(), d2p.begin() + static_cast<long>(d2p_pos),
                           d2p.begin() + static_cast<long>(d2p_pos + k));
      d2p_pos += k;
      progress = true;
    }
    r.tick(clock);
    p.tick(clock);

    // Closing: a finished side closes its socket; the other reads what is in flight, then sees EOF.
    if (!device_closed && r.finished()) {
      device_closed = true;
      progress = true;
    }
    if (!pusher_closed && p.finished()) {
      pusher_closed = true;
      progress = true;
    }
    if (device_closed && !pusher_closed && d2p_pos == d2p.size()) {
      p.peer_closed();
      pusher_closed = true;
    }
    if (pusher_closed && !device_closed && p2d_pos == p2d.size()) {
      r.peer_closed();
      device_closed = true;
    }
    if (res.cut && !device_closed && p2d_pos == p2d.size() && r.output().size == 0 && d2p_pos == d2p.size()) {
      r.peer_closed();
      p.peer_closed();
      device_closed = pusher_closed = true;
    }
    if (device_closed && pusher_closed) break;
    if (!progress) {
      res.stalled = true;
      break;
    }
  }
  // Count DATA payload bytes the receiver actually consumed.
  bool incomplete = false;
  const auto frames = split_frames(res.to_device, &incomplete);
  for (const Frame& f : frames) {
    if (f.type == static_cast<std::uint8_t>(core::FrameType::data)) res.content_bytes += f.payload.size();
  }
  if (incomplete) {
    std::size_t at = 0;
    for (const Frame& f : frames) at += f.raw.size();
    if (res.to_device.size() - at > 3 && res.to_device[at] == static_cast<std::uint8_t>(core::FrameType::data))
      res.content_bytes += res.to_device.size() - at - 3;
  }
  return res;
}

// --- typical configurations
// -----------------------------------------------------------------------------------------

inline const std::string kKey = "0123456789abcdef-test-key";
inline const std::string kDeviceId = "test-device";

/// Keeps a string alive for the rest of the test program (PushParams / ReceiverConfig hold views).
inline const std::string& keep(const std::string& s) {
  static std::deque<std::string> kept;
  kept.push_back(s);
  return kept.back();
}

inline core::ReceiverConfig device_config(const std::string& key = kKey) {
  core::ReceiverConfig c;
  c.key = view(keep(key));
  c.device_id = view(kDeviceId);
  c.caps = core::caps::file | core::caps::firmware | core::caps::resume | core::caps::stat | core::caps::reboot;
  c.window = 64 * 1024;
  c.max_size = 0;
  c.idle_timeout_ms = 30000;
  return c;
}

/// The name and key are copied into storage that outlives the Pusher.
inline core::PushParams push_params(const std::string& name, const Bytes& content, const std::string& key = kKey) {
  core::PushParams p;
  p.key = view(keep(key));
  p.op = core::Operation::push;
  p.name = view(keep(name));
  p.size = content.size();
  const Bytes h = sha256_of(content);
  std::memcpy(p.sha256, h.data(), h.size());
  return p;
}

inline core::PushParams stat_params(const std::string& name, const std::string& key = kKey) {
  core::PushParams p;
  p.key = view(keep(key));
  p.op = core::Operation::stat;
  p.name = view(keep(name));
  return p;
}

}  // namespace otter::test
