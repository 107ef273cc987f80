// otter-record-session — produces the pusher's bytes for one connection to a device under test, and the bytes the
// reference device (core::Receiver + the POSIX storage port) answers to them.
//
// The device under test (the MicroPython receiver) has a deterministic nonce in the tests, so its HELLO is known
// before the session: given that HELLO, this tool configures a core::Receiver identically (caps, fw_state, window,
// max_size, free, nonce, id; it checks that the reference HELLO is byte-identical), runs the project's own
// core::Pusher against it and records both directions. Replaying PREFIX.in into the device under test must then
// produce PREFIX.out (ACK frames may sit at other offsets: devices ACK per chunk they read).
//
//   otter-record-session --hello HEX --device-key KEY --state DIR --out PREFIX  (pusher mode:)
//       --file F --name NAME | --name-hex HEX  [--op push|stat] [--key KEY] [--kind file|firmware|N] [--reboot]
//       [--size N] [--sha256 HEX] [--client-nonce HEX] [--chunk N] [--cut-after N] [--end eof|timeout|error]
//   otter-record-session --hello HEX --device-key KEY --state DIR --out PREFIX --input RAW [--end ...]
//       (raw mode: RAW is fed to the reference device as the pusher's bytes: garbage, replays, truncations)
//
// --state is the reference device's root; keep it between runs to resume. --cut-after N ends the pusher's stream
// after N content bytes (mid-frame if N is not on a frame boundary). --end says how the stream ends for the
// device: the peer closes (eof), goes silent until the idle timeout (timeout), or sends ERROR and closes (error).
// Prints a JSON summary.
#include <cstdint>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "otter/core/codec.hpp"
#include "otter/core/pusher.hpp"
#include "otter/core/receiver.hpp"
#include "otter/ports/openssl_crypto.hpp"
#include "otter/ports/posix_storage.hpp"

namespace {

using otter::ErrorCode;
using otter::core::ByteView;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint64_t kNoLimit = ~std::uint64_t{0};
constexpr std::uint32_t kIdleMs = 30000;

std::optional<Bytes> unhex(const std::string& s) {
  Bytes out;
  int hi = -1;
  for (const char c : s) {
    int v = 0;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    } else if (c == ' ' || c == ':') {
      continue;
    } else {
      return std::nullopt;
    }
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(hi * 16 + v));
      hi = -1;
    }
  }
  if (hi >= 0) return std::nullopt;
  return out;
}

std::optional<Bytes> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

bool write_file(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  return static_cast<bool>(f);
}

ByteView view(const Bytes& b) { return ByteView(b.data(), b.size()); }
ByteView view(const std::string& s) { return ByteView(s.data(), s.size()); }

/// OpenSSL crypto whose random() returns scripted bytes (the nonce the device under test used).
class ScriptedCrypto final : public otter::core::CryptoPort {
 public:
  explicit ScriptedCrypto(Bytes script) : script_(std::move(script)) {}
  otter::core::Sha256& sha256() override { return inner_.sha256(); }
  bool hmac_sha256(ByteView key, const ByteView* parts, std::size_t n, std::uint8_t out[32]) override {
    return inner_.hmac_sha256(key, parts, n, out);
  }
  bool random(std::uint8_t* out, std::size_t n) override {
    for (std::size_t i = 0; i < n; ++i) {
      out[i] = pos_ < script_.size() ? script_[pos_] : 0;
      ++pos_;
    }
    return true;
  }

 private:
  otter::ports::OpenSslCrypto inner_;
  Bytes script_;
  std::size_t pos_ = 0;
};

/// The POSIX storage port reporting a fixed free space (the device under test's).
class FixedFreeStorage final : public otter::core::StoragePort {
 public:
  FixedFreeStorage(otter::core::StoragePort& inner, std::uint64_t free) : inner_(inner), free_(free) {}
  std::uint64_t free_space() override { return free_; }
  otter::core::Result<std::uint64_t> begin(ByteView name, otter::core::Kind kind, std::uint64_t size,
                                           const std::uint8_t sha256[32], otter::core::Sha256& hasher) override {
    return inner_.begin(name, kind, size, sha256, hasher);
  }
  otter::core::Result<void> write(const std::uint8_t* data, std::size_t n) override { return inner_.write(data, n); }
  otter::core::Result<void> commit() override { return inner_.commit(); }
  void suspend() override { inner_.suspend(); }
  void discard() override { inner_.discard(); }
  otter::core::Result<otter::core::FileStat> stat(ByteView name, otter::core::Sha256& hasher) override {
    return inner_.stat(name, hasher);
  }

 private:
  otter::core::StoragePort& inner_;
  std::uint64_t free_;
};

struct Options {
  std::string hello_hex, device_key, key, state, out, input;
  std::string op = "push", file, name, name_hex, kind = "file", sha256_hex, client_nonce_hex, end = "eof";
  bool reboot = false;
  std::optional<std::uint64_t> size, cut_after;
  std::uint32_t chunk = 16384;
};

/// The reference device and what it answered.
class Reference {
 public:
  Reference(otter::core::Receiver& r, Bytes& out) : r_(r), out_(out) {}

  /// Moves the receiver's pending output to the recording (and to `sink`, if any).
  template <class Sink>
  void drain(Sink&& sink) {
    for (;;) {
      const ByteView o = r_.output();
      if (o.size == 0) return;
      out_.insert(out_.end(), o.data, o.data + o.size);
      sink(o);
      r_.output_consumed(o.size);
    }
  }

  /// Feeds bytes as the pusher sent them; stops when the receiver no longer consumes (session over).
  template <class Sink>
  void feed(const std::uint8_t* p, std::size_t n, std::uint64_t& now, Sink&& sink) {
    while (n > 0) {
      const std::size_t used = r_.feed(p, n, ++now);
      drain(sink);
      if (used == 0) return;
      p += used;
      n -= used;
    }
  }

 private:
  otter::core::Receiver& r_;
  Bytes& out_;
};

int run(const Options& o) {
  const auto hello = unhex(o.hello_hex);
  if (!hello) {
    std::cerr << "--hello is not hex\n";
    return 2;
  }
  auto decoded = otter::core::decode_hello(view(*hello));
  if (!decoded) {
    std::cerr << "--hello does not decode: " << decoded.error().message << "\n";
    return 2;
  }
  const otter::core::Hello h = *decoded;

  otter::ports::PosixDevice pdev(o.state, 0);
  otter::ports::PosixStorage posix(pdev);
  FixedFreeStorage storage(posix, h.free);
  ScriptedCrypto dcrypto(Bytes(h.nonce, h.nonce + otter::core::kNonceSize));
  otter::core::ReceiverConfig cfg;
  cfg.key = view(o.device_key);
  cfg.device_id = h.id;
  cfg.caps = h.caps;
  cfg.fw_state = h.fw_state;
  cfg.window = h.window;
  cfg.max_size = h.max_size == kNoLimit ? 0 : h.max_size;
  cfg.idle_timeout_ms = kIdleMs;
  otter::core::Receiver r(cfg, storage, dcrypto);

  Bytes in, out;  // pusher -> device, device -> pusher (as recorded)
  Reference ref(r, out);
  std::uint64_t now = 0;
  r.start(now);
  Bytes hello_frame;
  ref.drain([&](ByteView v) { hello_frame.assign(v.data, v.data + v.size); });
  if (hello_frame.size() != hello->size() + otter::core::kFrameHeaderSize ||
      !std::equal(hello->begin(), hello->end(), hello_frame.begin() + otter::core::kFrameHeaderSize)) {
    std::cerr << "the reference device's HELLO differs from --hello (encoding mismatch)\n";
    return 3;
  }

  nlohmann::ordered_json summary;
  if (!o.input.empty()) {
    const auto raw = read_file(o.input);
    if (!raw) {
      std::cerr << "cannot read " << o.input << "\n";
      return 2;
    }
    in = *raw;
    ref.feed(in.data(), in.size(), now, [](ByteView) {});
  } else {
    Bytes content;
    if (!o.file.empty()) {
      const auto f = read_file(o.file);
      if (!f) {
        std::cerr << "cannot read " << o.file << "\n";
        return 2;
      }
      content = *f;
    }
    otter::core::PushParams params;
    const std::string key = o.key.empty() ? o.device_key : o.key;
    params.key = view(key);
    params.op = o.op == "stat" ? otter::core::Operation::stat : otter::core::Operation::push;
    Bytes name_bytes;
    if (!o.name_hex.empty()) {
      const auto nb = unhex(o.name_hex);
      if (!nb) {
        std::cerr << "--name-hex is not hex\n";
        return 2;
      }
      name_bytes = *nb;
    } else {
      name_bytes.assign(o.name.begin(), o.name.end());
    }
    params.name = view(name_bytes);
    if (o.kind == "file") {
      params.kind = otter::core::Kind::file;
    } else if (o.kind == "firmware") {
      params.kind = otter::core::Kind::firmware;
    } else {
      params.kind = static_cast<otter::core::Kind>(std::stoi(o.kind));
    }
    params.flags = o.reboot ? otter::core::flags::reboot : 0;
    params.size = o.size.value_or(content.size());
    content.resize(params.size, 0);
    if (!o.sha256_hex.empty()) {
      const auto s = unhex(o.sha256_hex);
      if (!s || s->size() != 32) {
        std::cerr << "--sha256 must be 64 hex digits\n";
        return 2;
      }
      std::copy(s->begin(), s->end(), params.sha256);
    } else {
      otter::ports::OpenSslSha256 hasher;
      hasher.update(content.data(), content.size());
      hasher.finish(params.sha256);
    }
    params.chunk_size = o.chunk;
    Bytes client_nonce(32);
    for (std::size_t i = 0; i < client_nonce.size(); ++i) client_nonce[i] = static_cast<std::uint8_t>(0xA0 + i);
    if (!o.client_nonce_hex.empty()) {
      const auto cn = unhex(o.client_nonce_hex);
      if (!cn || cn->size() != 32) {
        std::cerr << "--client-nonce must be 64 hex digits\n";
        return 2;
      }
      client_nonce = *cn;
    }
    ScriptedCrypto pcrypto(client_nonce);
    otter::core::Pusher p(params, pcrypto);
    p.feed(hello_frame.data(), hello_frame.size(), now);

    auto to_pusher = [&](ByteView v) { p.feed(v.data, v.size, now); };
    std::uint64_t content_sent = 0;
    bool cut = false;
    for (int iter = 0; iter < 10'000'000 && !cut && !p.finished() && !r.finished(); ++iter) {
      bool progress = false;
      const ByteView ctl = p.output();
      if (ctl.size != 0) {
        const Bytes chunk(ctl.data, ctl.data + ctl.size);
        p.output_consumed(ctl.size);
        in.insert(in.end(), chunk.begin(), chunk.end());
        ref.feed(chunk.data(), chunk.size(), now, to_pusher);
        progress = true;
      }
      while (!cut && !p.finished()) {
        const std::uint32_t len = p.data_ready();
        if (len == 0) break;
        const std::uint64_t off = p.data_offset();
        Bytes fr(otter::core::kFrameHeaderSize);
        otter::core::encode_header(otter::core::FrameType::data, static_cast<std::uint16_t>(len), fr.data());
        std::uint64_t take = len;
        if (o.cut_after && content_sent + len >= *o.cut_after) {
          take = *o.cut_after - content_sent;
          cut = true;
        }
        fr.insert(fr.end(), content.begin() + static_cast<std::ptrdiff_t>(off),
                  content.begin() + static_cast<std::ptrdiff_t>(off + take));
        content_sent += take;
        if (!cut) p.data_sent(len);  // before the device answers: its ACK may cover this frame
        in.insert(in.end(), fr.begin(), fr.end());
        ref.feed(fr.data(), fr.size(), now, to_pusher);
        progress = true;
      }
      if (!progress) break;
    }
    summary["pusher_result"] = static_cast<unsigned>(p.error());
    summary["pusher_message"] = p.error_message();
    summary["resume_offset"] = p.resume_offset();
    summary["content_sent"] = content_sent;
    summary["cut"] = cut;
  }

  // How the stream ends for the device.
  if (!r.finished() && o.end == "error") {
    static constexpr char kMsg[] = "canceled by the pusher";
    Bytes fr(otter::core::kFrameHeaderSize + otter::core::kErrorFixed + sizeof kMsg - 1);
    otter::core::encode_error(ErrorCode::internal, ByteView(kMsg, sizeof kMsg - 1), fr.data(), fr.size());
    in.insert(in.end(), fr.begin(), fr.end());
    ref.feed(fr.data(), fr.size(), now, [](ByteView) {});
  }
  if (!r.finished()) {
    if (o.end == "timeout") {
      now += kIdleMs + 1;
      r.tick(now);
      ref.drain([](ByteView) {});
    } else {
      r.peer_closed();
    }
  }
  summary["device_result"] = static_cast<unsigned>(r.result());
  summary["in_bytes"] = in.size();
  summary["out_bytes"] = out.size();
  if (!write_file(o.out + ".in", in) || !write_file(o.out + ".out", out)) {
    std::cerr << "cannot write " << o.out << ".in/.out\n";
    return 2;
  }
  std::cout << summary.dump() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app(
      "otter-record-session: the pusher's bytes for a session with a device under test, and the reference "
      "device's answer");
  app.add_option("--hello", o.hello_hex, "HELLO payload (hex) the device under test sends")->required();
  app.add_option("--device-key", o.device_key, "the device's key")->required();
  app.add_option("--key", o.key, "the pusher's key (default: the device's)");
  app.add_option("--state", o.state, "the reference device's root directory")->required();
  app.add_option("--out", o.out, "write PREFIX.in (pusher->device) and PREFIX.out (device->pusher)")->required();
  app.add_option("--input", o.input, "raw mode: feed this file to the reference device as the pusher's bytes");
  app.add_option("--op", o.op, "push or stat")->check(CLI::IsMember({"push", "stat"}));
  app.add_option("--file", o.file, "content to push");
  app.add_option("--name", o.name, "target name");
  app.add_option("--name-hex", o.name_hex, "target name as hex bytes (for names a shell cannot pass)");
  app.add_option("--kind", o.kind, "file, firmware or a raw kind number");
  app.add_flag("--reboot", o.reboot, "set the reboot flag");
  app.add_option("--size", o.size, "announce this size (content zero-padded or truncated)");
  app.add_option("--sha256", o.sha256_hex, "announce this SHA-256 instead of the content's");
  app.add_option("--client-nonce", o.client_nonce_hex, "client nonce (default a0 a1 .. bf)");
  app.add_option("--chunk", o.chunk, "DATA payload size")->check(CLI::Range(1, 65535));
  app.add_option("--cut-after", o.cut_after, "end the pusher's stream after this many content bytes");
  app.add_option("--end", o.end, "how the stream ends: eof, timeout, or error (an ERROR frame, then eof)")
      ->check(CLI::IsMember({"eof", "timeout", "error"}));
  CLI11_PARSE(app, argc, argv);
  return run(o);
}
