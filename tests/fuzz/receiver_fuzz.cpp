// otter fuzzing — the device receiver state machine (core/src/receiver.cpp) fed by a hostile pusher.
//
// The input is a script of operations: raw bytes, and frames the harness completes with a valid MAC (so the fuzzer
// gets past authentication): PUSH of content it chose (with that content's SHA-256 or a wrong one), STAT, DATA of
// that content or of arbitrary bytes, ERROR, clock ticks, a cut connection followed by a new session on the same
// device (resume), partial draining of the receiver's output (back-pressure).
//
// Properties, on an in-memory storage port (tests/core/fake_storage.hpp) wrapped with checks:
//  * every name given to storage passes validate_name and never climbs out of the root;
//  * storage is written only inside an open transfer and never beyond the announced size;
//  * commit() only when the partial copy holds exactly the announced size with the announced SHA-256 (for a
//    DIGEST_LAST push: the SHA-256 of the last authentic DIGEST the harness sent);
//  * a DONE is only sent after a successful commit of exactly those bytes;
//  * the session always ends (finished, bounded), no UB, no read or write outside a buffer.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "fake_storage.hpp"
#include "fuzz_check.hpp"
#include "fuzz_crypto.hpp"
#include "fuzz_input.hpp"
#include "otter/core/codec.hpp"
#include "otter/core/name.hpp"
#include "otter/core/receiver.hpp"
#include "otter/ports/openssl_crypto.hpp"

using namespace otter;
using otter::core::ByteView;
using otter::test::Bytes;

namespace {

const std::string kKey = "fuzz-device-key-0123456789";
const std::string kId = "fuzz-device";

using otter::fuzz::FuzzCrypto;

Bytes sha256_of(const std::uint8_t* p, std::size_t n) {
  ports::OpenSslSha256 h;
  h.update(p, n);
  Bytes out(core::kHashSize);
  h.finish(out.data());
  return out;
}

bool name_is_safe(const std::string& n) {
  if (n.empty() || n.front() == '/') return false;
  std::size_t start = 0;
  while (start <= n.size()) {
    const auto slash = n.find('/', start);
    const auto seg = n.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (seg.empty() || seg == "." || seg == "..") return false;
    for (const char c : seg) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F || c == '\\') return false;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

/// FakeStorage with the properties checked on every call.
class CheckedStorage final : public core::StoragePort {
 public:
  explicit CheckedStorage(test::FakeDevice& dev) : dev_(dev), inner_(dev) {}

  std::uint64_t free_space() override { return inner_.free_space(); }
  core::Result<std::uint64_t> begin(ByteView name, core::Kind kind, std::uint64_t size,
                                    const std::uint8_t sha256[core::kHashSize], core::Sha256& hasher) override {
    OTTER_FUZZ_CHECK(core::validate_name(name).has_value());
    name_.assign(reinterpret_cast<const char*>(name.data), name.size);
    OTTER_FUZZ_CHECK(name_is_safe(name_));
    OTTER_FUZZ_CHECK(!inner_.open());
    auto r = inner_.begin(name, kind, size, sha256, hasher);
    if (r) {
      OTTER_FUZZ_CHECK(*r <= size);
      size_ = size;
      std::memcpy(sha_, sha256, core::kHashSize);
    }
    return r;
  }
  core::Result<void> write(const std::uint8_t* data, std::size_t n) override {
    OTTER_FUZZ_CHECK(inner_.open());
    OTTER_FUZZ_CHECK(dev_.partials[name_].bytes.size() + n <= size_);
    return inner_.write(data, n);
  }
  core::Result<void> commit() override {
    OTTER_FUZZ_CHECK(inner_.open());
    const Bytes& b = dev_.partials[name_].bytes;
    OTTER_FUZZ_CHECK(b.size() == size_);
    // DIGEST_LAST: the request named no SHA-256 (all zeros); the DIGEST did.
    const Bytes named(sha_, sha_ + core::kHashSize);
    const Bytes want = named == Bytes(core::kHashSize, 0) ? digest_sent : named;
    OTTER_FUZZ_CHECK(want.size() == core::kHashSize);
    OTTER_FUZZ_CHECK(sha256_of(b.data(), b.size()) == want);
    auto r = inner_.commit();
    if (r) {
      committed_size = size_;
      std::memcpy(committed_sha, want.data(), core::kHashSize);
      ++commits;
    }
    return r;
  }
  void suspend() override { inner_.suspend(); }
  void discard() override { inner_.discard(); }
  core::Result<core::FileStat> stat(ByteView name, core::Sha256& hasher) override {
    OTTER_FUZZ_CHECK(core::validate_name(name).has_value());
    OTTER_FUZZ_CHECK(name_is_safe(std::string(reinterpret_cast<const char*>(name.data), name.size)));
    return inner_.stat(name, hasher);
  }

  int commits = 0;
  Bytes digest_sent;  // SHA-256 in the last DIGEST the harness signed
  std::uint64_t committed_size = 0;
  std::uint8_t committed_sha[core::kHashSize] = {};

 private:
  test::FakeDevice& dev_;
  test::FakeStorage inner_;
  std::string name_;
  std::uint64_t size_ = 0;
  std::uint8_t sha_[core::kHashSize] = {};
};

/// OTTER_FUZZ_TRACE=1: print every frame the device sends (to see what an input reaches).
bool trace() {
  static const bool on = std::getenv("OTTER_FUZZ_TRACE") != nullptr;
  return on;
}

struct Session {
  Session(const core::ReceiverConfig& cfg, test::FakeDevice& dev, std::uint64_t now)
      : storage(dev), receiver(cfg, storage, crypto) {
    receiver.start(now);
  }
  FuzzCrypto crypto;
  CheckedStorage storage;
  core::Receiver receiver;
  Bytes from_device;  // everything the receiver sent
  std::size_t scanned = 0;
  Bytes hello;        // HELLO payload
  Bytes request_mac;  // of the last PUSH/STAT sent
  int dones_checked = 0;
};

/// Takes up to `max` bytes of output; checks every complete DONE against the storage's commits.
void drain(Session& s, std::size_t max = ~std::size_t{0}) {
  const ByteView out = s.receiver.output();
  const std::size_t k = out.size < max ? out.size : max;
  s.from_device.insert(s.from_device.end(), out.data, out.data + k);
  s.receiver.output_consumed(k);
  while (s.scanned + core::kFrameHeaderSize <= s.from_device.size()) {
    const std::uint8_t* f = s.from_device.data() + s.scanned;
    auto h = core::decode_header(f);
    OTTER_FUZZ_CHECK(h.has_value());  // the receiver only sends well-formed frames
    if (s.scanned + core::kFrameHeaderSize + h->length > s.from_device.size()) break;
    const ByteView payload(f + core::kFrameHeaderSize, h->length);
    if (trace()) {
      std::fprintf(stderr, "device -> frame 0x%02x, %u bytes", static_cast<unsigned>(h->type), h->length);
      if (h->type == core::FrameType::error) {
        if (auto e = core::decode_error(payload))
          std::fprintf(stderr, ": %u %.*s", static_cast<unsigned>(e->code), static_cast<int>(e->message.size),
                       reinterpret_cast<const char*>(e->message.data));
      }
      std::fprintf(stderr, "\n");
    }
    if (h->type == core::FrameType::hello) {
      OTTER_FUZZ_CHECK(core::decode_hello(payload).has_value());
      s.hello.assign(payload.data, payload.data + payload.size);
    } else if (h->type == core::FrameType::done) {
      auto d = core::decode_done(payload);
      OTTER_FUZZ_CHECK(d.has_value());
      ++s.dones_checked;
      OTTER_FUZZ_CHECK(s.storage.commits == s.dones_checked);
      OTTER_FUZZ_CHECK(d->size == s.storage.committed_size);
      OTTER_FUZZ_CHECK(std::memcmp(d->sha256, s.storage.committed_sha, core::kHashSize) == 0);
    } else {
      OTTER_FUZZ_CHECK(h->type == core::FrameType::ready || h->type == core::FrameType::ack ||
                       h->type == core::FrameType::stat_result || h->type == core::FrameType::error);
    }
    s.scanned += core::kFrameHeaderSize + h->length;
  }
}

void feed(Session& s, const Bytes& bytes, std::uint64_t now) {
  std::size_t at = 0;
  for (int guard = 0; at < bytes.size() && guard < 100000; ++guard) {
    drain(s);
    const std::size_t c = s.receiver.feed(bytes.data() + at, bytes.size() - at, now);
    at += c;
    if (c == 0 && s.receiver.output().size == 0) break;  // the session ended: the rest is ignored
  }
}

Bytes frame(core::FrameType type, const Bytes& payload) {
  Bytes f(core::kFrameHeaderSize);
  core::encode_header(type, static_cast<std::uint16_t>(payload.size()), f.data());
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

/// A PUSH or STAT payload with a valid MAC over this session's HELLO.
Bytes signed_request(Session& s, bool push, const std::string& name, core::Kind kind, std::uint8_t flags,
                     std::uint64_t size, const Bytes& sha) {
  std::uint8_t buf[core::kFrameHeaderSize + core::kMaxControlPayload];
  std::size_t n = 0;
  if (push) {
    core::PushRequest m;
    for (std::size_t i = 0; i < core::kNonceSize; ++i) m.client_nonce[i] = static_cast<std::uint8_t>(i);
    m.kind = kind;
    m.flags = flags;
    m.size = size;
    std::memcpy(m.sha256, sha.data(), core::kHashSize);
    m.name = ByteView(name.data(), name.size());
    n = core::encode_push(m, buf, sizeof buf);
  } else {
    core::StatRequest m;
    m.name = ByteView(name.data(), name.size());
    n = core::encode_stat(m, buf, sizeof buf);
  }
  if (n == 0) return {};
  Bytes payload(buf + core::kFrameHeaderSize, buf + n);
  std::uint8_t mac[core::kMacSize];
  const ByteView key(kKey.data(), kKey.size());
  if (!core::request_mac(s.crypto, key, ByteView(s.hello.data(), s.hello.size()),
                         ByteView(payload.data(), payload.size() - core::kMacSize), mac))
    return {};
  std::memcpy(payload.data() + payload.size() - core::kMacSize, mac, core::kMacSize);
  s.request_mac.assign(mac, mac + core::kMacSize);
  return payload;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::uint8_t setup = in.u8();
  core::ReceiverConfig cfg;
  cfg.key = ByteView(kKey.data(), kKey.size());
  cfg.device_id = ByteView(kId.data(), kId.size());
  cfg.caps = static_cast<std::uint16_t>(core::caps::file | core::caps::resume | core::caps::stat |
                                        ((setup & 1) ? core::caps::firmware | core::caps::reboot : 0) |
                                        ((setup & 64) ? core::caps::digest_last : 0));
  cfg.window = (setup & 2) ? core::kMinWindow : 64 * 1024;
  cfg.max_size = (setup & 4) ? 4096 : 0;
  cfg.idle_timeout_ms = 1000;

  test::FakeDevice dev;
  dev.free = (setup & 8) ? 2048 : std::uint64_t{1} << 32;
  dev.put_file("app.bin", {1, 2, 3});
  if (setup & 16) dev.fail_write_after = 100;
  if (setup & 32) dev.fail_commit = core::Error{ErrorCode::storage, "injected commit failure"};

  std::uint64_t now = 1;
  std::optional<Session> s;
  auto open_session = [&] {
    s.emplace(cfg, dev, now);
    drain(*s);  // HELLO: its payload signs the requests
  };
  open_session();
  Bytes content;         // the content of the last PUSH the harness signed
  std::size_t sent = 0;  // how much of it went out as DATA

  for (int ops = 0; ops < 64 && !in.empty(); ++ops) {
    const std::uint8_t op = in.u8();
    switch (op % 10) {
      case 0:  // raw bytes
        feed(*s, in.bytes(in.u16() % 2048), now);
        break;
      case 1:
      case 2: {  // signed PUSH of content chosen here; op 2 announces a hash the content does not have
        const std::uint8_t kind = in.u8();
        const std::uint8_t flags = in.u8();
        std::string name = in.str(in.u8() % 32);
        if (name.empty()) name = "app.bin";
        content = in.bytes(in.u16() % 8192);
        sent = 0;
        Bytes sha = sha256_of(content.data(), content.size());
        if (op % 10 == 2) sha[0] ^= 1;
        if ((flags & core::flags::digest_last) != 0 && (op & 0x80) == 0) sha.assign(core::kHashSize, 0);
        const std::uint64_t announced = (kind & 0x80) ? in.u64() : content.size();
        Bytes p = signed_request(*s, true, name, static_cast<core::Kind>(kind & 1), flags, announced, sha);
        if (!p.empty()) feed(*s, frame(core::FrameType::push, p), now);
        break;
      }
      case 3: {  // signed STAT
        std::string name = in.str(in.u8() % 32);
        Bytes p = signed_request(*s, false, name, core::Kind::file, 0, 0, Bytes(core::kHashSize));
        if (!p.empty()) feed(*s, frame(core::FrameType::stat, p), now);
        break;
      }
      case 4: {  // DATA: the next bytes of the pushed content
        const std::size_t n =
            std::min<std::size_t>(in.u16() % 4096 + 1, content.size() - std::min(sent, content.size()));
        Bytes payload(content.begin() + static_cast<long>(std::min(sent, content.size())),
                      content.begin() + static_cast<long>(std::min(sent, content.size()) + n));
        sent += n;
        feed(*s, frame(core::FrameType::data, payload), now);
        break;
      }
      case 5:
        if ((op & 0x80) != 0 && s->request_mac.size() == core::kMacSize) {
          // A signed DIGEST of the pushed content (op & 0x40: of other content)
          core::Digest d;
          Bytes sha = sha256_of(content.data(), content.size());
          if ((op & 0x40) != 0) sha[0] ^= 1;
          std::memcpy(d.sha256, sha.data(), core::kHashSize);
          const ByteView key(kKey.data(), kKey.size());
          if (!core::digest_mac(s->crypto, key, s->request_mac.data(), d.sha256, d.mac)) break;
          std::uint8_t buf[core::kFrameHeaderSize + core::kDigestPayload];
          const std::size_t n = core::encode_digest(d, buf, sizeof buf);
          s->storage.digest_sent = sha;
          feed(*s, Bytes(buf, buf + n), now);
        } else {  // DATA of arbitrary bytes
          feed(*s, frame(core::FrameType::data, in.bytes(in.u8())), now);
        }
        break;
      case 6:  // ERROR from the pusher
        feed(*s, frame(core::FrameType::error, in.bytes(in.u8() % 64)), now);
        break;
      case 7:  // time passes
        now += static_cast<std::uint64_t>(in.u16()) * 4;
        s->receiver.tick(now);
        break;
      case 8:  // the reader is slow: take only part of the output
        drain(*s, in.u8());
        break;
      default:  // the connection is cut; the pusher reconnects (a new session on the same device: resume)
        s->receiver.peer_closed();
        drain(*s);
        open_session();
        sent = in.u8() & 1 ? 0 : sent;
        break;
    }
    drain(*s);
    if (s->receiver.finished()) open_session();
  }
  // Every session ends: an idle one times out, then its output is drained.
  now += 10'000;
  s->receiver.tick(now);
  drain(*s);
  now += 10'000;
  s->receiver.tick(now);
  drain(*s);
  OTTER_FUZZ_CHECK(s->receiver.finished() || s->receiver.state() == core::Receiver::State::closed);
  return 0;
}
