// Codec: every message round-trips; malformed payloads are refused with the right code.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "core_test_util.hpp"
#include "otter/core/codec.hpp"

namespace otter::test {
namespace {

using namespace otter::core;

void fill(std::uint8_t* p, std::size_t n, std::uint8_t start) {
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(start + i);
}

// Encodes into a roomy buffer and returns the whole frame.
template <class F>
Bytes encoded(F&& f) {
  Bytes out(70000);
  const std::size_t n = f(out.data(), out.size());
  out.resize(n);
  return out;
}

ByteView payload_of(const Bytes& frame) { return ByteView(frame.data() + 3, frame.size() - 3); }

TEST(Codec, HeaderRoundTripAndUnknownTypes) {
  const FrameType all[] = {FrameType::hello, FrameType::ready,       FrameType::ack,
                           FrameType::done,  FrameType::stat_result, FrameType::push,
                           FrameType::stat,  FrameType::data,        FrameType::error};
  for (FrameType t : all) {
    std::uint8_t h[3];
    encode_header(t, 0xBEEF, h);
    EXPECT_EQ(h[0], static_cast<std::uint8_t>(t));
    EXPECT_EQ(h[1], 0xBE);
    EXPECT_EQ(h[2], 0xEF);
    auto d = decode_header(h);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->type, t);
    EXPECT_EQ(d->length, 0xBEEF);
  }
  for (int t : {0x00, 0x06, 0x0F, 0x14, 0x20, 0x7E, 0x80, 0xFF}) {
    const std::uint8_t h[3] = {static_cast<std::uint8_t>(t), 0, 1};
    auto d = decode_header(h);
    ASSERT_FALSE(d) << t;
    EXPECT_EQ(d.error().code, ErrorCode::protocol);
  }
}

Hello sample_hello(const std::string& id) {
  Hello h;
  h.caps = caps::file | caps::stat;
  h.fw_state = FwState::pending_verify;
  h.window = 0x00012345;
  h.max_size = 0x0102030405060708ull;
  h.free = 0xF0E0D0C0B0A09080ull;
  fill(h.nonce, kNonceSize, 0x40);
  h.id = ByteView(id.data(), id.size());
  return h;
}

TEST(Codec, HelloRoundTrip) {
  for (std::size_t id_len : {std::size_t{1}, std::size_t{5}, kMaxIdLen}) {
    const std::string id(id_len, 'd');
    const Hello h = sample_hello(id);
    const Bytes f = encoded([&](std::uint8_t* o, std::size_t c) { return encode_hello(h, o, c); });
    ASSERT_EQ(f.size(), 3 + kHelloFixed + id_len);
    EXPECT_EQ(f[0], 0x01);
    EXPECT_EQ(get_u16(f.data() + 1), kHelloFixed + id_len);
    EXPECT_EQ(0, std::memcmp(f.data() + 3, "OTTR", 4));
    auto d = decode_hello(payload_of(f));
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->version, 1);
    EXPECT_EQ(d->caps, h.caps);
    EXPECT_EQ(d->fw_state, FwState::pending_verify);
    EXPECT_EQ(d->window, h.window);
    EXPECT_EQ(d->max_size, h.max_size);
    EXPECT_EQ(d->free, h.free);
    EXPECT_EQ(0, std::memcmp(d->nonce, h.nonce, kNonceSize));
    EXPECT_EQ(str_of(d->id), id);
  }
}

TEST(Codec, HelloRejections) {
  const std::string id = "dev";
  const Bytes good = encoded([&](std::uint8_t* o, std::size_t c) { return encode_hello(sample_hello(id), o, c); });
  const Bytes p(good.begin() + 3, good.end());

  // id length 0 and 65 cannot be encoded ...
  const std::string long_id(kMaxIdLen + 1, 'x');
  std::uint8_t buf[512];
  EXPECT_EQ(encode_hello(sample_hello(""), buf, sizeof buf), 0u);
  EXPECT_EQ(encode_hello(sample_hello(long_id), buf, sizeof buf), 0u);
  // ... nor decoded.
  Bytes q = p;
  q[60] = 0;
  q.resize(kHelloFixed);
  EXPECT_EQ(decode_hello(view(q)).error().code, ErrorCode::protocol);
  q = p;
  q[60] = 65;
  q.resize(kHelloFixed + 65, 'x');
  EXPECT_EQ(decode_hello(view(q)).error().code, ErrorCode::protocol);

  // Wrong lengths.
  q = p;
  q.push_back('x');
  EXPECT_EQ(decode_hello(view(q)).error().code, ErrorCode::protocol);
  q = p;
  q.pop_back();
  EXPECT_EQ(decode_hello(view(q)).error().code, ErrorCode::protocol);
  q = p;
  q.resize(30);
  EXPECT_EQ(decode_hello(view(q)).error().code, ErrorCode::protocol);

  // Bad magic, short garbage, other versions.
  q = p;
  q[0] = 'H';
  EXPECT_EQ(decode_hello(view(q)).error().code, ErrorCode::not_otter_device);
  EXPECT_EQ(decode_hello(ByteView()).error().code, ErrorCode::not_otter_device);
  EXPECT_EQ(decode_hello(view(std::string("OTT"))).error().code, ErrorCode::not_otter_device);
  q = p;
  q[4] = 2;
  EXPECT_EQ(decode_hello(view(q)).error().code, ErrorCode::unsupported_version);
  q.resize(5);  // a future version's HELLO may be shorter: the version is read first
  EXPECT_EQ(decode_hello(view(q)).error().code, ErrorCode::unsupported_version);

  // Window below the minimum.
  q = p;
  put_u32(q.data() + 8, kMinWindow - 1);
  EXPECT_EQ(decode_hello(view(q)).error().code, ErrorCode::protocol);

  // Buffer too small.
  EXPECT_EQ(encode_hello(sample_hello(id), buf, good.size() - 1), 0u);
  EXPECT_EQ(encode_hello(sample_hello(id), buf, good.size()), good.size());
}

PushRequest sample_push(const std::string& name) {
  PushRequest m;
  fill(m.client_nonce, kNonceSize, 0xA0);
  m.kind = Kind::firmware;
  m.flags = flags::reboot;
  m.size = 0x1122334455667788ull;
  fill(m.sha256, kHashSize, 0x10);
  m.name = ByteView(name.data(), name.size());
  fill(m.mac, kMacSize, 0xC0);
  return m;
}

TEST(Codec, PushRoundTrip) {
  for (std::size_t len : {std::size_t{0}, std::size_t{1}, std::size_t{255}, kMaxControlPayload - kPushFixed}) {
    const std::string name(len, 'n');
    const PushRequest m = sample_push(name);
    const Bytes f = encoded([&](std::uint8_t* o, std::size_t c) { return encode_push(m, o, c); });
    ASSERT_EQ(f.size(), 3 + kPushFixed + len);
    EXPECT_EQ(f[0], 0x10);
    auto d = decode_push(payload_of(f));
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->version, 1);
    EXPECT_EQ(0, std::memcmp(d->client_nonce, m.client_nonce, kNonceSize));
    EXPECT_EQ(d->kind, Kind::firmware);
    EXPECT_EQ(d->flags, flags::reboot);
    EXPECT_EQ(d->size, m.size);
    EXPECT_EQ(0, std::memcmp(d->sha256, m.sha256, kHashSize));
    EXPECT_EQ(str_of(d->name), name);
    EXPECT_EQ(0, std::memcmp(d->mac, m.mac, kMacSize));
  }
}

TEST(Codec, PushRejections) {
  std::uint8_t buf[2048];
  // A name that does not fit a control frame is not encoded.
  const std::string too_long(kMaxControlPayload - kPushFixed + 1, 'n');
  EXPECT_EQ(encode_push(sample_push(too_long), buf, sizeof buf), 0u);
  const std::string huge(70000, 'n');
  EXPECT_EQ(encode_push(sample_push(huge), buf, sizeof buf), 0u);

  const std::string name = "a/b.txt";
  const Bytes f = encoded([&](std::uint8_t* o, std::size_t c) { return encode_push(sample_push(name), o, c); });
  EXPECT_EQ(encode_push(sample_push(name), buf, f.size() - 1), 0u);
  const Bytes p(f.begin() + 3, f.end());
  Bytes q = p;
  q.push_back(0);
  EXPECT_EQ(decode_push(view(q)).error().code, ErrorCode::protocol);
  q = p;
  q.pop_back();
  EXPECT_EQ(decode_push(view(q)).error().code, ErrorCode::protocol);
  q = p;
  put_u16(q.data() + 75, static_cast<std::uint16_t>(name.size() + 1));
  EXPECT_EQ(decode_push(view(q)).error().code, ErrorCode::protocol);
  EXPECT_EQ(decode_push(ByteView()).error().code, ErrorCode::protocol);
  q = p;
  q[0] = 2;
  EXPECT_EQ(decode_push(view(q)).error().code, ErrorCode::unsupported_version);
  q = p;
  q[33] = 2;
  EXPECT_EQ(decode_push(view(q)).error().code, ErrorCode::unsupported_kind);
}

TEST(Codec, StatRoundTripAndRejections) {
  const std::string name = "main.py";
  StatRequest m;
  fill(m.client_nonce, kNonceSize, 1);
  m.name = view(name);
  fill(m.mac, kMacSize, 2);
  const Bytes f = encoded([&](std::uint8_t* o, std::size_t c) { return encode_stat(m, o, c); });
  ASSERT_EQ(f.size(), 3 + kStatFixed + name.size());
  EXPECT_EQ(f[0], 0x11);
  auto d = decode_stat(payload_of(f));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->version, 1);
  EXPECT_EQ(0, std::memcmp(d->client_nonce, m.client_nonce, kNonceSize));
  EXPECT_EQ(str_of(d->name), name);
  EXPECT_EQ(0, std::memcmp(d->mac, m.mac, kMacSize));

  const Bytes p(f.begin() + 3, f.end());
  Bytes q = p;
  q.push_back(0);
  EXPECT_EQ(decode_stat(view(q)).error().code, ErrorCode::protocol);
  q.resize(kStatFixed - 1);
  EXPECT_EQ(decode_stat(view(q)).error().code, ErrorCode::protocol);
  q = p;
  q[0] = 9;
  EXPECT_EQ(decode_stat(view(q)).error().code, ErrorCode::unsupported_version);

  std::uint8_t buf[2048];
  const std::string fits(kMaxControlPayload - kStatFixed, 's');
  const std::string too_long(kMaxControlPayload - kStatFixed + 1, 's');
  m.name = view(fits);
  EXPECT_EQ(encode_stat(m, buf, sizeof buf), 3 + kMaxControlPayload);
  m.name = view(too_long);
  EXPECT_EQ(encode_stat(m, buf, sizeof buf), 0u);
}

TEST(Codec, ReadyAckDoneStatResultRoundTrip) {
  Ready r;
  r.offset = 0x0A0B0C0D0E0F1011ull;
  fill(r.mac, kMacSize, 7);
  Bytes f = encoded([&](std::uint8_t* o, std::size_t c) { return encode_ready(r, o, c); });
  ASSERT_EQ(f.size(), 3 + kReadyPayload);
  EXPECT_EQ(f[0], 0x02);
  auto rd = decode_ready(payload_of(f));
  ASSERT_TRUE(rd);
  EXPECT_EQ(rd->offset, r.offset);
  EXPECT_EQ(0, std::memcmp(rd->mac, r.mac, kMacSize));

  f = encoded([&](std::uint8_t* o, std::size_t c) { return encode_ack(0xFFFFFFFFFFull, o, c); });
  ASSERT_EQ(f.size(), 3 + kAckPayload);
  EXPECT_EQ(f[0], 0x03);
  EXPECT_EQ(*decode_ack(payload_of(f)), 0xFFFFFFFFFFull);

  Done d;
  d.size = 12345;
  fill(d.sha256, kHashSize, 0x55);
  d.rebooting = 1;
  fill(d.mac, kMacSize, 0x99);
  f = encoded([&](std::uint8_t* o, std::size_t c) { return encode_done(d, o, c); });
  ASSERT_EQ(f.size(), 3 + kDonePayload);
  EXPECT_EQ(f[0], 0x04);
  auto dd = decode_done(payload_of(f));
  ASSERT_TRUE(dd);
  EXPECT_EQ(dd->size, 12345u);
  EXPECT_EQ(dd->rebooting, 1);
  EXPECT_EQ(0, std::memcmp(dd->sha256, d.sha256, kHashSize));
  EXPECT_EQ(0, std::memcmp(dd->mac, d.mac, kMacSize));

  StatResult s;
  s.exists = 1;
  s.size = 77;
  fill(s.sha256, kHashSize, 0x31);
  fill(s.mac, kMacSize, 0x32);
  f = encoded([&](std::uint8_t* o, std::size_t c) { return encode_stat_result(s, o, c); });
  ASSERT_EQ(f.size(), 3 + kStatResultPayload);
  EXPECT_EQ(f[0], 0x05);
  auto sd = decode_stat_result(payload_of(f));
  ASSERT_TRUE(sd);
  EXPECT_EQ(sd->exists, 1);
  EXPECT_EQ(sd->size, 77u);
  EXPECT_EQ(0, std::memcmp(sd->sha256, s.sha256, kHashSize));
  EXPECT_EQ(0, std::memcmp(sd->mac, s.mac, kMacSize));
}

TEST(Codec, FixedLengthMessagesRejectWrongLengths) {
  const Bytes big(200, 0);
  for (std::size_t n : {std::size_t{0}, std::size_t{1}}) {
    const ByteView v(big.data(), n);
    EXPECT_EQ(decode_ready(v).error().code, ErrorCode::protocol);
    EXPECT_EQ(decode_ack(v).error().code, ErrorCode::protocol);
    EXPECT_EQ(decode_done(v).error().code, ErrorCode::protocol);
    EXPECT_EQ(decode_stat_result(v).error().code, ErrorCode::protocol);
  }
  EXPECT_FALSE(decode_ready(ByteView(big.data(), kReadyPayload - 1)));
  EXPECT_FALSE(decode_ready(ByteView(big.data(), kReadyPayload + 1)));
  EXPECT_FALSE(decode_ack(ByteView(big.data(), kAckPayload - 1)));
  EXPECT_FALSE(decode_ack(ByteView(big.data(), kAckPayload + 1)));
  EXPECT_FALSE(decode_done(ByteView(big.data(), kDonePayload - 1)));
  EXPECT_FALSE(decode_done(ByteView(big.data(), kDonePayload + 1)));
  EXPECT_FALSE(decode_stat_result(ByteView(big.data(), kStatResultPayload - 1)));
  EXPECT_FALSE(decode_stat_result(ByteView(big.data(), kStatResultPayload + 1)));

  std::uint8_t buf[128];
  Ready r;
  Done d;
  StatResult s;
  EXPECT_EQ(encode_ready(r, buf, 3 + kReadyPayload - 1), 0u);
  EXPECT_EQ(encode_ack(1, buf, 3 + kAckPayload - 1), 0u);
  EXPECT_EQ(encode_done(d, buf, 3 + kDonePayload - 1), 0u);
  EXPECT_EQ(encode_stat_result(s, buf, 3 + kStatResultPayload - 1), 0u);
}

TEST(Codec, ErrorRoundTripAndTruncation) {
  const std::string msg = "name is taken";
  Bytes f = encoded([&](std::uint8_t* o, std::size_t c) { return encode_error(ErrorCode::busy, view(msg), o, c); });
  ASSERT_EQ(f.size(), 3 + kErrorFixed + msg.size());
  EXPECT_EQ(f[0], 0x7F);
  auto e = decode_error(payload_of(f));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, ErrorCode::busy);
  EXPECT_EQ(str_of(e->message), msg);

  // Empty message.
  f = encoded([&](std::uint8_t* o, std::size_t c) { return encode_error(ErrorCode::timeout, ByteView(), o, c); });
  ASSERT_EQ(f.size(), 6u);
  e = decode_error(payload_of(f));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, ErrorCode::timeout);
  EXPECT_EQ(e->message.size, 0u);

  // Longer than 255: truncated.
  std::string long_msg(300, 'm');
  long_msg[254] = 'X';
  long_msg[255] = 'Y';
  f = encoded([&](std::uint8_t* o, std::size_t c) { return encode_error(ErrorCode::storage, view(long_msg), o, c); });
  ASSERT_EQ(f.size(), 3 + kErrorFixed + kMaxErrorMessage);
  e = decode_error(payload_of(f));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message.size, kMaxErrorMessage);
  EXPECT_EQ(e->message.data[254], 'X');

  // Wrong lengths.
  const Bytes p(f.begin() + 3, f.end());
  Bytes q = p;
  q.push_back(0);
  EXPECT_EQ(decode_error(view(q)).error().code, ErrorCode::protocol);
  q = p;
  q.pop_back();
  EXPECT_EQ(decode_error(view(q)).error().code, ErrorCode::protocol);
  EXPECT_EQ(decode_error(ByteView(p.data(), 2)).error().code, ErrorCode::protocol);

  std::uint8_t small[8];
  EXPECT_EQ(encode_error(ErrorCode::busy, view(msg), small, sizeof small), 0u);
}

TEST(Codec, MacsAreHmacOfTheDocumentedConcatenation) {
  BackendCrypto c;
  const std::string key = "k-0123456789abcdef";
  const Bytes hello = {1, 2, 3, 4, 5};
  const Bytes req = {9, 8, 7};
  std::uint8_t got[kMacSize], want[kMacSize];

  ASSERT_TRUE(request_mac(c, view(key), view(hello), view(req), got));
  Bytes msg = bytes_of(std::string("otter/1 request"));
  msg.insert(msg.end(), hello.begin(), hello.end());
  msg.insert(msg.end(), req.begin(), req.end());
  ByteView one = view(msg);
  ASSERT_TRUE(c.hmac_sha256(view(key), &one, 1, want));
  EXPECT_EQ(hex(got, 32), hex(want, 32));

  std::uint8_t rm[kMacSize];
  fill(rm, kMacSize, 0x33);
  ASSERT_TRUE(ready_mac(c, view(key), rm, 0x0102030405060708ull, got));
  msg = bytes_of(std::string("otter/1 ready"));
  msg.insert(msg.end(), rm, rm + 32);
  for (int i = 1; i <= 8; ++i) msg.push_back(static_cast<std::uint8_t>(i));
  one = view(msg);
  ASSERT_TRUE(c.hmac_sha256(view(key), &one, 1, want));
  EXPECT_EQ(hex(got, 32), hex(want, 32));

  std::uint8_t sha[kHashSize];
  fill(sha, kHashSize, 0x44);
  ASSERT_TRUE(done_mac(c, view(key), rm, 5, sha, 1, got));
  msg = bytes_of(std::string("otter/1 done"));
  msg.insert(msg.end(), rm, rm + 32);
  const Bytes five = {0, 0, 0, 0, 0, 0, 0, 5};
  msg.insert(msg.end(), five.begin(), five.end());
  msg.insert(msg.end(), sha, sha + 32);
  msg.push_back(1);
  one = view(msg);
  ASSERT_TRUE(c.hmac_sha256(view(key), &one, 1, want));
  EXPECT_EQ(hex(got, 32), hex(want, 32));

  ASSERT_TRUE(stat_mac(c, view(key), rm, 1, 5, sha, got));
  msg = bytes_of(std::string("otter/1 stat"));
  msg.insert(msg.end(), rm, rm + 32);
  msg.push_back(1);
  msg.insert(msg.end(), five.begin(), five.end());
  msg.insert(msg.end(), sha, sha + 32);
  one = view(msg);
  ASSERT_TRUE(c.hmac_sha256(view(key), &one, 1, want));
  EXPECT_EQ(hex(got, 32), hex(want, 32));

  // DIGEST_LAST: READY with the prefix digest, and DIGEST.
  std::uint8_t prefix[kHashSize];
  fill(prefix, kHashSize, 0x55);
  ASSERT_TRUE(ready_mac(c, view(key), rm, 5, prefix, got));
  msg = bytes_of(std::string("otter/1 ready"));
  msg.insert(msg.end(), rm, rm + 32);
  msg.insert(msg.end(), five.begin(), five.end());
  msg.insert(msg.end(), prefix, prefix + 32);
  one = view(msg);
  ASSERT_TRUE(c.hmac_sha256(view(key), &one, 1, want));
  EXPECT_EQ(hex(got, 32), hex(want, 32));

  ASSERT_TRUE(digest_mac(c, view(key), rm, sha, got));
  msg = bytes_of(std::string("otter/1 digest"));
  msg.insert(msg.end(), rm, rm + 32);
  msg.insert(msg.end(), sha, sha + 32);
  one = view(msg);
  ASSERT_TRUE(c.hmac_sha256(view(key), &one, 1, want));
  EXPECT_EQ(hex(got, 32), hex(want, 32));
}

TEST(Codec, DigestLastFramesRoundTrip) {
  Ready r;
  r.offset = 0x0102030405060708ull;
  r.has_prefix = true;
  fill(r.prefix_sha256, kHashSize, 0xAB);
  fill(r.mac, kMacSize, 0xCD);
  std::uint8_t buf[3 + kReadyPrefixPayload];
  ASSERT_EQ(encode_ready(r, buf, sizeof buf), sizeof buf);
  EXPECT_EQ(buf[0], 0x02);
  EXPECT_EQ(buf[1], 0);
  EXPECT_EQ(buf[2], 72);
  EXPECT_EQ(buf[3 + 8], 0xAB);   // the prefix digest follows the offset
  EXPECT_EQ(buf[3 + 40], 0xCD);  // then the MAC
  EXPECT_EQ(encode_ready(r, buf, sizeof buf - 1), 0u);
  const auto back = decode_ready(ByteView(buf + 3, kReadyPrefixPayload));
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->has_prefix);
  EXPECT_EQ(back->offset, r.offset);
  EXPECT_EQ(hex(back->prefix_sha256, 32), hex(r.prefix_sha256, 32));
  EXPECT_EQ(hex(back->mac, 32), hex(r.mac, 32));
  const auto plain = decode_ready(ByteView(buf + 3, kReadyPayload));
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->has_prefix);

  Digest d;
  fill(d.sha256, kHashSize, 0x11);
  fill(d.mac, kMacSize, 0x22);
  std::uint8_t dbuf[3 + kDigestPayload];
  ASSERT_EQ(encode_digest(d, dbuf, sizeof dbuf), sizeof dbuf);
  EXPECT_EQ(dbuf[0], 0x13);
  EXPECT_EQ(dbuf[2], 64);
  EXPECT_EQ(encode_digest(d, dbuf, sizeof dbuf - 1), 0u);
  const auto dback = decode_digest(ByteView(dbuf + 3, kDigestPayload));
  ASSERT_TRUE(dback);
  EXPECT_EQ(hex(dback->sha256, 32), hex(d.sha256, 32));
  EXPECT_EQ(hex(dback->mac, 32), hex(d.mac, 32));
  EXPECT_FALSE(decode_digest(ByteView(dbuf + 3, kDigestPayload - 1)));
  EXPECT_FALSE(decode_digest(ByteView(dbuf + 3, 0)));
  const std::uint8_t hdr[3] = {0x13, 0, 64};
  EXPECT_TRUE(decode_header(hdr));
  for (std::size_t n : {std::size_t{41}, std::size_t{71}, std::size_t{73}}) {
    const Bytes big(100, 0);
    EXPECT_FALSE(decode_ready(ByteView(big.data(), n))) << n;
  }
}

}  // namespace
}  // namespace otter::test
