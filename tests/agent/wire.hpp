// Hand-driven protocol v1 client for the agent tests: frames built with the core codec, MACs with the OpenSSL port,
// read and written over a plain blocking socket (otter::test::TcpClient). Unexpected conditions throw
// std::runtime_error (GoogleTest reports it as a failure of the running test).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "otter/core/codec.hpp"
#include "otter/ports/openssl_crypto.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/files.hpp"
#include "otter/test/tcp.hpp"

namespace otter::test::wire {

using namespace std::chrono_literals;

inline core::ByteView bv(std::string_view s) { return core::ByteView(s.data(), s.size()); }
inline const std::uint8_t* u8(std::string_view s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }

constexpr std::uint8_t kHello = 0x01, kReady = 0x02, kAck = 0x03, kDone = 0x04, kStatResult = 0x05, kPush = 0x10,
                       kStat = 0x11, kData = 0x12, kError = 0x7F;

struct PushSpec {
  std::string name;
  std::uint64_t size = 0;
  std::array<std::uint8_t, 32> sha{};
  core::Kind kind = core::Kind::file;
  std::uint8_t flags = 0;
};

inline PushSpec push_of(std::string name, std::string_view content) {
  PushSpec p;
  p.name = std::move(name);
  p.size = content.size();
  p.sha = sha256(content);
  return p;
}

/// Decoded ERROR frame.
struct WireError {
  ErrorCode code = ErrorCode::ok;
  std::string message;
};

inline std::optional<WireError> as_error(const RawFrame& f) {
  if (f.type != kError) return std::nullopt;
  auto e = core::decode_error(bv(f.payload));
  if (!e) throw std::runtime_error("undecodable ERROR frame");
  return WireError{e->code, std::string(reinterpret_cast<const char*>(e->message.data), e->message.size)};
}

class Client {
 public:
  Client(const AgentEndpoint& ep, std::string key) : tcp_(ep.host, ep.port), key_(std::move(key)) {}

  TcpClient& tcp() { return tcp_; }
  const std::string& hello_payload() const { return hello_payload_; }
  const core::Hello& hello() const { return hello_; }
  const std::uint8_t* request_mac() const { return request_mac_; }

  /// Reads and decodes HELLO (throws if the first frame is anything else).
  const core::Hello& read_hello(std::chrono::milliseconds timeout = 10s) {
    auto f = tcp_.read_frame(timeout);
    if (!f) throw std::runtime_error("no HELLO from the agent");
    if (f->type != kHello) throw std::runtime_error("first frame is type " + std::to_string(f->type) + ", not HELLO");
    hello_payload_ = f->payload;
    auto h = core::decode_hello(bv(hello_payload_));
    if (!h) throw std::runtime_error(std::string("bad HELLO: ") + h.error().message);
    hello_ = *h;
    return hello_;
  }

  /// The whole PUSH frame for this connection's HELLO (MAC keyed with `key`, default the agent's).
  std::string push_frame(const PushSpec& p, std::optional<std::string> key = std::nullopt) {
    core::PushRequest req;
    crypto_.random(req.client_nonce, sizeof req.client_nonce);
    req.kind = p.kind;
    req.flags = p.flags;
    req.size = p.size;
    std::memcpy(req.sha256, p.sha.data(), 32);
    req.name = bv(p.name);
    std::string frame(core::kFrameHeaderSize + core::kPushFixed + p.name.size(), '\0');
    auto* out = reinterpret_cast<std::uint8_t*>(frame.data());
    if (core::encode_push(req, out, frame.size()) != frame.size()) throw std::runtime_error("encode_push failed");
    const std::string k = key.value_or(key_);
    const core::ByteView without_mac(out + core::kFrameHeaderSize, core::kPushFixed + p.name.size() - core::kMacSize);
    if (!core::request_mac(crypto_, bv(k), bv(hello_payload_), without_mac, req.mac)) {
      throw std::runtime_error("request_mac failed");
    }
    std::memcpy(out + frame.size() - core::kMacSize, req.mac, core::kMacSize);
    std::memcpy(request_mac_, req.mac, core::kMacSize);
    return frame;
  }

  std::string stat_frame(const std::string& name) {
    core::StatRequest req;
    crypto_.random(req.client_nonce, sizeof req.client_nonce);
    req.name = bv(name);
    std::string frame(core::kFrameHeaderSize + core::kStatFixed + name.size(), '\0');
    auto* out = reinterpret_cast<std::uint8_t*>(frame.data());
    if (core::encode_stat(req, out, frame.size()) != frame.size()) throw std::runtime_error("encode_stat failed");
    const core::ByteView without_mac(out + core::kFrameHeaderSize, core::kStatFixed + name.size() - core::kMacSize);
    if (!core::request_mac(crypto_, bv(key_), bv(hello_payload_), without_mac, req.mac)) {
      throw std::runtime_error("request_mac failed");
    }
    std::memcpy(out + frame.size() - core::kMacSize, req.mac, core::kMacSize);
    std::memcpy(request_mac_, req.mac, core::kMacSize);
    return frame;
  }

  void send(std::string_view bytes) {
    if (!tcp_.send_all(bytes)) throw std::runtime_error("send failed (connection closed?)");
  }
  /// Sends without throwing (the agent may already have closed the connection).
  bool try_send(std::string_view bytes) { return tcp_.send_all(bytes); }

  std::optional<RawFrame> frame(std::chrono::milliseconds timeout = 10s) { return tcp_.read_frame(timeout); }

  /// Next frame must be READY with a valid MAC; returns its offset.
  std::uint64_t expect_ready(std::chrono::milliseconds timeout = 10s) {
    auto f = frame(timeout);
    if (!f) throw std::runtime_error("no READY");
    if (auto e = as_error(*f)) {
      throw std::runtime_error("ERROR " + std::string(error_name(e->code)) + " instead of READY: " + e->message);
    }
    if (f->type != kReady) throw std::runtime_error("frame type " + std::to_string(f->type) + " instead of READY");
    auto r = core::decode_ready(bv(f->payload));
    if (!r) throw std::runtime_error("bad READY");
    std::uint8_t mac[32];
    if (!core::ready_mac(crypto_, bv(key_), request_mac_, r->offset, mac) || !core::equal_ct(mac, r->mac, 32)) {
      throw std::runtime_error("READY MAC does not verify");
    }
    return r->offset;
  }

  /// Sends content[from..] as DATA frames of `chunk` bytes (no flow control: tests keep sizes below the window).
  void send_data(std::string_view content, std::size_t from = 0, std::size_t chunk = 16384) {
    for (std::size_t off = from; off < content.size(); off += chunk) {
      send(make_frame(kData, content.substr(off, chunk)));
    }
  }

  /// Skips ACKs (checking they never decrease) until a non-ACK frame; nullopt if the connection ends first.
  std::optional<RawFrame> after_acks(std::chrono::milliseconds timeout = 10s) {
    std::uint64_t last = 0;
    for (;;) {
      auto f = frame(timeout);
      if (!f || f->type != kAck) return f;
      auto a = core::decode_ack(bv(f->payload));
      if (!a || *a < last) throw std::runtime_error("bad or decreasing ACK");
      last = *a;
      last_ack_ = *a;
    }
  }
  [[nodiscard]] std::uint64_t last_ack() const { return last_ack_; }

  /// Next non-ACK frame must be DONE with a valid MAC and this SHA-256.
  core::Done expect_done(const PushSpec& p, std::chrono::milliseconds timeout = 20s) {
    auto f = after_acks(timeout);
    if (!f) throw std::runtime_error("connection ended without DONE");
    if (auto e = as_error(*f)) {
      throw std::runtime_error("ERROR " + std::string(error_name(e->code)) + " instead of DONE: " + e->message);
    }
    if (f->type != kDone) throw std::runtime_error("frame type " + std::to_string(f->type) + " instead of DONE");
    auto d = core::decode_done(bv(f->payload));
    if (!d) throw std::runtime_error("bad DONE");
    std::uint8_t mac[32];
    if (!core::done_mac(crypto_, bv(key_), request_mac_, d->size, d->sha256, d->rebooting, mac) ||
        !core::equal_ct(mac, d->mac, 32)) {
      throw std::runtime_error("DONE MAC does not verify");
    }
    if (d->size != p.size || std::memcmp(d->sha256, p.sha.data(), 32) != 0) {
      throw std::runtime_error("DONE does not confirm the pushed content");
    }
    return *d;
  }

  core::StatResult expect_stat_result(std::chrono::milliseconds timeout = 10s) {
    auto f = frame(timeout);
    if (!f || f->type != kStatResult) throw std::runtime_error("no STAT_RESULT");
    auto s = core::decode_stat_result(bv(f->payload));
    if (!s) throw std::runtime_error("bad STAT_RESULT");
    std::uint8_t mac[32];
    if (!core::stat_mac(crypto_, bv(key_), request_mac_, s->exists, s->size, s->sha256, mac) ||
        !core::equal_ct(mac, s->mac, 32)) {
      throw std::runtime_error("STAT_RESULT MAC does not verify");
    }
    return *s;
  }

  /// The next non-ACK frame must be an ERROR: its code (the agent then closes: checked too).
  WireError expect_error(std::chrono::milliseconds timeout = 10s) {
    auto f = after_acks(timeout);
    if (!f) throw std::runtime_error("connection ended without ERROR");
    auto e = as_error(*f);
    if (!e) throw std::runtime_error("frame type " + std::to_string(f->type) + " instead of ERROR");
    if (!tcp_.wait_closed(timeout)) throw std::runtime_error("agent did not close after ERROR");
    return *e;
  }

  /// HELLO, PUSH, READY (offset must be `expect_offset`), DATA, DONE.
  void push(const PushSpec& p, std::string_view content, std::uint64_t expect_offset = 0) {
    read_hello();
    send(push_frame(p));
    const auto off = expect_ready();
    if (off != expect_offset) {
      throw std::runtime_error("READY offset " + std::to_string(off) + ", expected " + std::to_string(expect_offset));
    }
    send_data(content, off);
    expect_done(p);
  }

 private:
  TcpClient tcp_;
  std::string key_;
  ports::OpenSslCrypto crypto_;
  std::string hello_payload_;
  core::Hello hello_;
  std::uint8_t request_mac_[32] = {};
  std::uint64_t last_ack_ = 0;
};

}  // namespace otter::test::wire
