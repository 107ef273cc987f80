// A real Pusher wired to a real Receiver (fake storage, real crypto), with random split sizes in both directions.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>

#include "core_test_util.hpp"
#include "otter/ports/mbedtls_crypto.hpp"

namespace otter::test {
namespace {

using namespace otter::core;

// One connection between a pusher and a device.
struct Connection {
  Connection(FakeDevice& dev, const ReceiverConfig& cfg, const PushParams& params)
      : storage(dev), receiver(cfg, storage, device_crypto), pusher(params, pusher_crypto) {}
  FakeStorage storage;
  BackendCrypto device_crypto;
  BackendCrypto pusher_crypto;
  Receiver receiver;
  Pusher pusher;
};

class SessionTest : public ::testing::Test {
 protected:
  LinkResult push(const std::string& name, const Bytes& content, LinkOptions o = {},
                  const std::string& pusher_key = kKey, PushParams* override_params = nullptr) {
    PushParams params = override_params != nullptr ? *override_params : push_params(name, content, pusher_key);
    conn = std::make_unique<Connection>(dev, cfg, params);
    LinkResult res = run_link(conn->receiver, conn->pusher, content, o, clock);
    EXPECT_FALSE(res.stalled) << "the two state machines stopped making progress";
    return res;
  }

  void expect_success(const std::string& name, const Bytes& content) {
    EXPECT_EQ(conn->pusher.error(), ErrorCode::ok) << conn->pusher.error_message();
    EXPECT_EQ(conn->pusher.state(), Pusher::State::succeeded);
    EXPECT_EQ(conn->receiver.result(), ErrorCode::ok);
    ASSERT_EQ(dev.files.count(name), 1u);
    EXPECT_TRUE(dev.files.at(name) == content) << "stored content differs";
    EXPECT_EQ(conn->pusher.done().size, content.size());
    EXPECT_EQ(hex(conn->pusher.done().sha256, 32), hex(sha256_of(content)));
    EXPECT_TRUE(dev.partials.empty());
    EXPECT_TRUE(dev.locked.empty());
  }

  void expect_failure(ErrorCode code) {
    EXPECT_EQ(conn->pusher.error(), code) << error_name(conn->pusher.error()) << ": " << conn->pusher.error_message();
    EXPECT_EQ(conn->receiver.result(), code);
    EXPECT_NE(std::string(conn->pusher.error_message()), "");
    EXPECT_TRUE(dev.locked.empty());
  }

  FakeDevice dev;
  ReceiverConfig cfg = device_config();
  std::unique_ptr<Connection> conn;
  std::uint64_t clock = 1'000'000;
};

TEST_F(SessionTest, EmptyFile) {
  const Bytes content;
  const LinkResult res = push("empty", content);
  expect_success("empty", content);
  EXPECT_EQ(res.content_bytes, 0u);
  EXPECT_EQ(res.data_frames, 0u);
}

TEST_F(SessionTest, OneByte) {
  const Bytes content = {0x42};
  const LinkResult res = push("one", content);
  expect_success("one", content);
  EXPECT_EQ(res.content_bytes, 1u);
  EXPECT_EQ(ack_offsets(res.to_pusher), (std::vector<std::uint64_t>{1}));
}

TEST_F(SessionTest, OneMebibyteRandom) {
  std::mt19937_64 rng(1);
  const Bytes content = random_bytes(rng, 1 << 20);
  LinkOptions o;
  o.max_split = 70000;
  const LinkResult res = push("big/blob.bin", content, o);
  expect_success("big/blob.bin", content);
  EXPECT_EQ(res.content_bytes, content.size());
  EXPECT_LE(res.max_in_flight, cfg.window);
}

TEST_F(SessionTest, StreamingWithRandomSplits) {
  // Many sizes, windows, chunk sizes and split sizes; 1..N bytes per feed in both directions.
  std::mt19937_64 rng(20240601);
  for (int round = 0; round < 40; ++round) {
    const std::size_t size = round < 4 ? static_cast<std::size_t>(round) : rng() % 40000;
    const Bytes content = random_bytes(rng, size);
    cfg.window = static_cast<std::uint32_t>(kMinWindow + rng() % 20000);
    LinkOptions o;
    o.seed = rng();
    o.max_split = 1 + rng() % (round % 3 == 0 ? 8 : 3000);
    o.random_frame_sizes = round % 2 == 1;
    const std::string name = "r/" + std::to_string(round);
    PushParams params = push_params(name, content);
    params.chunk_size = static_cast<std::uint32_t>(1 + rng() % 65535);
    SCOPED_TRACE(testing::Message() << "round " << round << " size " << size << " window " << cfg.window << " split "
                                    << o.max_split << " chunk " << params.chunk_size);
    const LinkResult res = push(name, content, o, kKey, &params);
    expect_success(name, content);
    EXPECT_EQ(res.content_bytes, size);
    EXPECT_LE(res.max_in_flight, cfg.window);
    if (HasFailure()) return;
  }
}

TEST_F(SessionTest, OneMebibyteWithTinySplits) {
  std::mt19937_64 rng(3);
  const Bytes content = random_bytes(rng, 1 << 20);
  LinkOptions o;
  o.seed = 99;
  o.max_split = 7;
  const LinkResult res = push("tiny-steps", content, o);
  expect_success("tiny-steps", content);
  EXPECT_EQ(res.content_bytes, content.size());
}

// On hosts the pusher uses OpenSSL: two independent implementations must agree on every MAC and hash. The
// microcontroller build (no OpenSSL) runs it with mbedTLS on both sides.
TEST_F(SessionTest, DeviceOnMbedTlsPusherOnOpenSsl) {
  std::mt19937_64 rng(4);
  const Bytes content = random_bytes(rng, 100000);
  const std::string name = "interop.bin";
  const PushParams params = push_params(name, content);
  FakeStorage storage(dev);
  ports::MbedTlsCrypto device_crypto;
  BackendCrypto pusher_crypto;
  Receiver r(cfg, storage, device_crypto);
  Pusher p(params, pusher_crypto);
  LinkOptions o;
  o.max_split = 5000;
  const LinkResult res = run_link(r, p, content, o, clock);
  EXPECT_FALSE(res.stalled);
  EXPECT_EQ(p.error(), ErrorCode::ok) << p.error_message();
  EXPECT_EQ(r.result(), ErrorCode::ok);
  EXPECT_EQ(dev.files.at(name), content);
}

// --- resume
// ------------------------------------------------------------------------------------------------------------

TEST_F(SessionTest, ResumeAfterACut) {
  std::mt19937_64 rng(5);
  const Bytes content = random_bytes(rng, 300000);
  const std::string name = "resume/me.bin";
  cfg.window = 1 << 20;
  for (bool mid_frame : {false, true}) {
    SCOPED_TRACE(mid_frame ? "cut in the middle of a DATA frame" : "cut between frames");
    dev = FakeDevice{};
    const std::uint64_t k = 123457;
    LinkOptions o;
    o.seed = mid_frame ? 11 : 12;
    o.max_split = 3000;
    o.content_limit = k;
    o.cut_mid_frame = mid_frame;
    LinkResult res = push(name, content, o);
    EXPECT_TRUE(res.cut);
    EXPECT_EQ(res.content_bytes, k);
    EXPECT_EQ(conn->receiver.received(), k);
    EXPECT_EQ(conn->receiver.result(), ErrorCode::connection_closed);
    EXPECT_EQ(conn->pusher.error(), ErrorCode::connection_closed);
    EXPECT_EQ(dev.files.count(name), 0u);
    ASSERT_EQ(dev.partials.count(name), 1u);
    EXPECT_EQ(dev.partials[name].bytes.size(), k);
    EXPECT_TRUE(dev.locked.empty());

    // A new connection: READY offset = K, only size - K bytes flow.
    o = LinkOptions{};
    o.seed = 13;
    o.max_split = 3000;
    const std::uint64_t before = dev.bytes_written;
    res = push(name, content, o);
    expect_success(name, content);
    EXPECT_EQ(conn->pusher.resume_offset(), k);
    EXPECT_EQ(res.content_bytes, content.size() - k);
    EXPECT_EQ(dev.bytes_written - before, content.size() - k);
    const auto frames = split_frames(res.to_pusher);
    ASSERT_GE(frames.size(), 2u);
    ASSERT_EQ(frames[1].type, 0x02);
    EXPECT_EQ(decode_ready(view(frames[1].payload))->offset, k);
  }
}

TEST_F(SessionTest, ResumeTwiceThenFinish) {
  std::mt19937_64 rng(6);
  const Bytes content = random_bytes(rng, 50000);
  const std::string name = "twice";
  std::uint64_t total = 0;
  for (std::uint64_t cut : {10000u, 10000u}) {
    LinkOptions o;
    o.content_limit = cut;
    const LinkResult res = push(name, content, o);
    EXPECT_EQ(conn->pusher.resume_offset(), total);
    total += res.content_bytes;
    EXPECT_EQ(conn->receiver.received(), total);
  }
  const LinkResult res = push(name, content);
  expect_success(name, content);
  EXPECT_EQ(conn->pusher.resume_offset(), 20000u);
  EXPECT_EQ(res.content_bytes, 30000u);
}

TEST_F(SessionTest, OtherContentForTheSameNameStartsOver) {
  std::mt19937_64 rng(7);
  const Bytes v1 = random_bytes(rng, 40000);
  const Bytes v2 = random_bytes(rng, 40000);
  LinkOptions o;
  o.content_limit = 20000;
  push("x", v1, o);
  ASSERT_EQ(dev.partials.at("x").bytes.size(), 20000u);
  const LinkResult res = push("x", v2);
  expect_success("x", v2);
  EXPECT_EQ(conn->pusher.resume_offset(), 0u);
  EXPECT_EQ(res.content_bytes, v2.size());
}

// --- DIGEST_LAST: the SHA-256 after the data (protocol.md 3.10)
// -------------------------------------------------------------------------------------------------

PushParams digest_last_params(const std::string& name, const Bytes& content) {
  PushParams p = push_params(name, content);
  p.digest_last = true;
  std::memset(p.sha256, 0, sizeof p.sha256);  // not known: the pusher must not need it
  return p;
}

class DigestLastTest : public SessionTest {
 protected:
  DigestLastTest() { cfg.caps = static_cast<std::uint16_t>(cfg.caps | caps::digest_last); }
  LinkResult push_dl(const std::string& name, const Bytes& content, LinkOptions o = {}, std::uint8_t flags = 0) {
    PushParams params = digest_last_params(name, content);
    params.flags = flags;
    return push(name, content, o, kKey, &params);
  }
};

TEST_F(DigestLastTest, DigestGoesAfterTheData) {
  std::mt19937_64 rng(41);
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{70001}}) {
    SCOPED_TRACE(testing::Message() << "size " << size);
    const Bytes content = random_bytes(rng, size);
    const std::string name = "dl/" + std::to_string(size);
    LinkOptions o;
    o.max_split = 5000;
    const LinkResult res = push_dl(name, content, o);
    expect_success(name, content);
    EXPECT_TRUE(conn->pusher.digest_last_used());
    EXPECT_EQ(res.content_bytes, size);
    const auto to_device = split_frames(res.to_device);
    ASSERT_GE(to_device.size(), 2u);
    const Result<PushRequest> req = decode_push(view(to_device[0].payload));
    ASSERT_TRUE(req);
    EXPECT_EQ(req->flags, flags::digest_last);
    EXPECT_EQ(hex(req->sha256, 32), std::string(64, '0'));
    // The last frame to the device is DIGEST, carrying the content's SHA-256.
    EXPECT_EQ(to_device.back().type, static_cast<std::uint8_t>(FrameType::digest));
    const Result<Digest> d = decode_digest(view(to_device.back().payload));
    ASSERT_TRUE(d);
    EXPECT_EQ(hex(d->sha256, 32), hex(sha256_of(content)));
    // READY carries the (empty) prefix digest.
    const auto to_pusher = split_frames(res.to_pusher);
    ASSERT_GE(to_pusher.size(), 2u);
    ASSERT_EQ(to_pusher[1].type, static_cast<std::uint8_t>(FrameType::ready));
    EXPECT_EQ(to_pusher[1].payload.size(), kReadyPrefixPayload);
    if (HasFailure()) return;
  }
}

TEST_F(DigestLastTest, RandomSplitsAndWindows) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 20; ++round) {
    const Bytes content = random_bytes(rng, rng() % 30000);
    cfg.window = static_cast<std::uint32_t>(kMinWindow + rng() % 20000);
    LinkOptions o;
    o.seed = rng();
    o.max_split = 1 + rng() % (round % 3 == 0 ? 8 : 3000);
    o.random_frame_sizes = round % 2 == 1;
    const std::string name = "dlr/" + std::to_string(round);
    SCOPED_TRACE(testing::Message() << "round " << round);
    push_dl(name, content, o);
    expect_success(name, content);
    if (HasFailure()) return;
  }
}

TEST_F(DigestLastTest, DeviceWithoutTheCapabilityGetsTheHashInTheRequest) {
  cfg.caps = static_cast<std::uint16_t>(cfg.caps & ~caps::digest_last);
  std::mt19937_64 rng(43);
  const Bytes content = random_bytes(rng, 20000);
  const LinkResult res = push_dl("old-device", content);
  expect_success("old-device", content);
  EXPECT_FALSE(conn->pusher.digest_last_used());
  const auto to_device = split_frames(res.to_device);
  const Result<PushRequest> req = decode_push(view(to_device.at(0).payload));
  ASSERT_TRUE(req);
  EXPECT_EQ(req->flags, 0);
  EXPECT_EQ(hex(req->sha256, 32), hex(sha256_of(content)));
  for (const Frame& f : to_device) EXPECT_NE(f.type, static_cast<std::uint8_t>(FrameType::digest));
}

TEST_F(DigestLastTest, WrongDigestIsHashMismatchAndNothingKept) {
  std::mt19937_64 rng(44);
  const Bytes content = random_bytes(rng, 30000);
  const Bytes other = random_bytes(rng, 30000);
  dev.files["app.bin"] = bytes_of(std::string("old"));
  LinkOptions o;
  o.digest_content = &other;
  push_dl("app.bin", content, o);
  expect_failure(ErrorCode::hash_mismatch);
  EXPECT_TRUE(dev.files.at("app.bin") == bytes_of(std::string("old")));
  EXPECT_TRUE(dev.partials.empty());
}

TEST_F(DigestLastTest, ResumeChecksThePrefixThenSendsOnlyTheRest) {
  std::mt19937_64 rng(45);
  const Bytes content = random_bytes(rng, 200000);
  LinkOptions o;
  o.content_limit = 77777;
  LinkResult res = push_dl("r.bin", content, o);
  EXPECT_TRUE(res.cut);
  ASSERT_EQ(dev.partials.count("r.bin"), 1u);
  EXPECT_EQ(dev.partials["r.bin"].bytes.size(), 77777u);

  res = push_dl("r.bin", content);
  expect_success("r.bin", content);
  EXPECT_EQ(conn->pusher.resume_offset(), 77777u);
  EXPECT_EQ(res.content_bytes, content.size() - 77777u);
  const auto to_pusher = split_frames(res.to_pusher);
  const Result<Ready> ready = decode_ready(view(to_pusher.at(1).payload));
  ASSERT_TRUE(ready);
  EXPECT_TRUE(ready->has_prefix);
  EXPECT_EQ(hex(ready->prefix_sha256, 32), hex(sha256_of(Bytes(content.begin(), content.begin() + 77777))));
}

TEST_F(DigestLastTest, AllBytesHeldStillNeedsTheDigest) {
  std::mt19937_64 rng(46);
  const Bytes content = random_bytes(rng, 5000);
  FakePartial part;  // every byte arrived, then the connection dropped before DIGEST
  part.size = content.size();
  part.bytes = content;  // keyed by the unknown (all-zero) SHA-256
  dev.partials["full.bin"] = part;
  const LinkResult res = push_dl("full.bin", content);
  expect_success("full.bin", content);
  EXPECT_EQ(conn->pusher.resume_offset(), 5000u);
  EXPECT_EQ(res.content_bytes, 0u);
}

TEST_F(DigestLastTest, PartialCopyOfOtherContentIsResumeMismatchThenRestart) {
  std::mt19937_64 rng(47);
  const Bytes v1 = random_bytes(rng, 60000);
  const Bytes v2 = random_bytes(rng, 60000);  // same name, same size, other content
  LinkOptions o;
  o.content_limit = 30000;
  push_dl("same-size.bin", v1, o);
  ASSERT_EQ(dev.partials.at("same-size.bin").bytes.size(), 30000u);

  push_dl("same-size.bin", v2);
  EXPECT_EQ(conn->pusher.error(), ErrorCode::resume_mismatch) << conn->pusher.error_message();
  EXPECT_EQ(conn->pusher.resume_offset(), 30000u);
  EXPECT_EQ(dev.files.count("same-size.bin"), 0u);
  EXPECT_TRUE(dev.locked.empty());

  // RESTART: the device drops its partial copy and takes everything from offset 0.
  const LinkResult res = push_dl("same-size.bin", v2, {}, flags::restart);
  expect_success("same-size.bin", v2);
  EXPECT_EQ(conn->pusher.resume_offset(), 0u);
  EXPECT_EQ(res.content_bytes, v2.size());
}

TEST_F(DigestLastTest, KnownHashPushDoesNotResumeADigestLastPartial) {
  // A DIGEST_LAST partial copy is keyed by an unknown SHA-256: a push naming the SHA-256 starts over.
  std::mt19937_64 rng(48);
  const Bytes content = random_bytes(rng, 40000);
  LinkOptions o;
  o.content_limit = 20000;
  push_dl("k.bin", content, o);
  ASSERT_EQ(dev.partials.count("k.bin"), 1u);
  const LinkResult res = push("k.bin", content);
  expect_success("k.bin", content);
  EXPECT_EQ(conn->pusher.resume_offset(), 0u);
  EXPECT_EQ(res.content_bytes, content.size());
}

// --- authentication
// -------------------------------------------------------------------------------------------------

TEST_F(SessionTest, WrongKeyIsAuthFailedAndNothingStored) {
  const Bytes content = bytes_of(std::string("secret stuff"));
  push("k", content, {}, "this-is-not-the-device-key");
  expect_failure(ErrorCode::auth_failed);
  EXPECT_EQ(dev.begins, 0);
  EXPECT_TRUE(dev.files.empty());
  EXPECT_TRUE(dev.partials.empty());
}

TEST_F(SessionTest, ReplayedPushIsAuthFailed) {
  const Bytes content = bytes_of(std::string("version 1"));
  LinkResult first = push("app.py", content);
  expect_success("app.py", content);
  const auto frames = split_frames(first.to_device);
  ASSERT_EQ(frames[0].type, 0x10);
  const Bytes recorded = frames[0].raw;

  // Session 2: an attacker replays the recorded PUSH (and DATA) to a new connection.
  dev.files.clear();
  FakeStorage storage(dev);
  BackendCrypto c;
  Receiver r(cfg, storage, c);
  r.start(clock);
  r.output_consumed(r.output().size);
  EXPECT_EQ(r.feed(recorded.data(), recorded.size(), clock), recorded.size());
  Bytes out = bytes_of(r.output());
  r.output_consumed(out.size());
  Bytes keep;
  auto e = find_error(out, &keep);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, ErrorCode::auth_failed);
  EXPECT_EQ(r.result(), ErrorCode::auth_failed);
  EXPECT_TRUE(r.finished());
  EXPECT_TRUE(dev.files.empty());
  EXPECT_EQ(dev.begins, 1);  // only the genuine session opened a transfer
}

TEST_F(SessionTest, TamperedRequestIsAuthFailed) {
  // A man in the middle edits the real pusher's PUSH: name, size, sha256.
  const Bytes content = bytes_of(std::string("firmware image"));
  const std::string name = "boot.bin";
  const std::vector<std::pair<const char*, std::size_t>> spots = {
      {"size", 3 + 42}, {"sha256", 3 + 50}, {"name", 3 + 77}, {"flags", 3 + 34}};
  for (const auto& [what, at] : spots) {
    SCOPED_TRACE(what);
    FakeStorage storage(dev);
    BackendCrypto dc, pc;
    Receiver r(cfg, storage, dc);
    const PushParams params = push_params(name, content);
    Pusher p(params, pc);
    r.start(clock);
    const Bytes hello = bytes_of(r.output());
    r.output_consumed(hello.size());
    p.feed(hello.data(), hello.size(), clock);
    Bytes req = bytes_of(p.output());
    p.output_consumed(req.size());
    req[at] ^= 0x20;
    EXPECT_EQ(r.feed(req.data(), req.size(), clock), req.size());
    const Bytes answer = bytes_of(r.output());
    r.output_consumed(answer.size());
    p.feed(answer.data(), answer.size(), clock);
    EXPECT_EQ(r.result(), ErrorCode::auth_failed);
    EXPECT_EQ(p.error(), ErrorCode::auth_failed);
    EXPECT_EQ(dev.begins, 0);
    EXPECT_TRUE(dev.files.empty());
  }
}

TEST_F(SessionTest, DeviceWithTheWrongKeyIsDeviceAuth) {
  // The device accepts anything (a fake without the key): the pusher must notice at READY.
  const Bytes content = bytes_of(std::string("do not give this to strangers"));
  const PushParams params = push_params("n", content);
  BackendCrypto pc, dc;
  Pusher p(params, pc);
  const std::string evil_id = "evil";
  Hello h;
  h.caps = caps::file;
  h.window = 65536;
  h.id = view(evil_id);
  dc.random(h.nonce, kNonceSize);
  Bytes hello(200);
  hello.resize(encode_hello(h, hello.data(), hello.size()));
  p.feed(hello.data(), hello.size(), clock);
  const Bytes req = bytes_of(p.output());
  p.output_consumed(req.size());
  Ready ready;
  const std::string fake_key = "guessed-key-0123456789";
  ASSERT_TRUE(ready_mac(dc, view(fake_key), req.data() + req.size() - kMacSize, 0, ready.mac));
  Bytes rf(64);
  rf.resize(encode_ready(ready, rf.data(), rf.size()));
  p.feed(rf.data(), rf.size(), clock);
  EXPECT_EQ(p.error(), ErrorCode::device_auth);
  EXPECT_EQ(p.data_ready(), 0u);  // not one content byte goes to an impostor
}

// --- content and device refusals
// --------------------------------------------------------------------------------------

TEST_F(SessionTest, WrongShaIsHashMismatchTargetUnchangedNoPartial) {
  const Bytes old_content = bytes_of(std::string("the old file"));
  dev.put_file("cfg.json", old_content);
  const Bytes content = bytes_of(std::string("{\"new\": true}"));
  PushParams params = push_params("cfg.json", content);
  const Bytes wrong = sha256_of(bytes_of(std::string("{\"new\": false}")));
  std::memcpy(params.sha256, wrong.data(), 32);
  const LinkResult res = push("cfg.json", content, {}, kKey, &params);
  expect_failure(ErrorCode::hash_mismatch);
  EXPECT_EQ(dev.files.at("cfg.json"), old_content);
  EXPECT_TRUE(dev.partials.empty());
  EXPECT_EQ(res.content_bytes, content.size());
}

TEST_F(SessionTest, DeviceRefusalsReachThePusherWithTheirMessage) {
  const Bytes content = bytes_of(std::string(1000, 'z'));
  {
    SCOPED_TRACE("too large");
    cfg.max_size = 999;
    push("f", content);
    expect_failure(ErrorCode::too_large);
    cfg.max_size = 0;
  }
  {
    SCOPED_TRACE("no space");
    dev.free = 999;
    push("f", content);
    expect_failure(ErrorCode::no_space);
    dev.free = 1 << 30;
  }
  {
    SCOPED_TRACE("busy");
    dev.fail_begin = Error{ErrorCode::busy, "f is being pushed by someone else"};
    push("f", content);
    expect_failure(ErrorCode::busy);
    EXPECT_STREQ(conn->pusher.error_message(), "f is being pushed by someone else");
  }
  {
    SCOPED_TRACE("bad kind");
    cfg.caps = caps::file;
    PushParams params = push_params("f", content);
    params.kind = Kind::firmware;
    push("f", content, {}, kKey, &params);
    expect_failure(ErrorCode::unsupported_kind);
    cfg = device_config();
  }
  {
    SCOPED_TRACE("bad name");
    push(".otter/steal", content);
    expect_failure(ErrorCode::bad_name);
  }
  EXPECT_TRUE(dev.files.empty());
}

// --- flow control
// ----------------------------------------------------------------------------------------------------

TEST_F(SessionTest, WindowIsRespectedAndAcksComeEveryQuarterWindow) {
  std::mt19937_64 rng(8);
  const Bytes content = random_bytes(rng, 100000);
  for (std::uint32_t window : {1024u, 4096u, 30000u}) {
    SCOPED_TRACE(window);
    cfg.window = window;
    LinkOptions o;
    o.seed = window;
    o.max_split = 1 + window / 3;
    const LinkResult res = push("w", content, o);
    expect_success("w", content);
    EXPECT_LE(res.max_in_flight, window);
    EXPECT_GE(res.max_in_flight, window / 2);  // and it actually uses the window
    const std::vector<std::uint64_t> acks = ack_offsets(res.to_pusher);
    ASSERT_FALSE(acks.empty());
    EXPECT_EQ(acks.back(), content.size());
    std::uint64_t prev = 0;
    for (std::size_t i = 0; i < acks.size(); ++i) {
      EXPECT_GT(acks[i], prev);
      // At least window/4 since the previous ACK (except the final one), and never much more: one write's worth.
      if (i + 1 < acks.size()) {
        EXPECT_GE(acks[i] - prev, window / 4);
      }
      EXPECT_LT(acks[i] - prev, window / 4 + o.max_split + 1);
      prev = acks[i];
    }
  }
}

// --- STAT, reboot
// ----------------------------------------------------------------------------------------------------

TEST_F(SessionTest, StatExistingAndMissing) {
  const Bytes content = bytes_of(std::string("import machine\n"));
  dev.put_file("boot.py", content);
  PushParams params = stat_params("boot.py");
  push("boot.py", {}, {}, kKey, &params);
  EXPECT_EQ(conn->pusher.error(), ErrorCode::ok) << conn->pusher.error_message();
  EXPECT_EQ(conn->receiver.result(), ErrorCode::ok);
  EXPECT_EQ(conn->pusher.stat_result().exists, 1);
  EXPECT_EQ(conn->pusher.stat_result().size, content.size());
  EXPECT_EQ(hex(conn->pusher.stat_result().sha256, 32), hex(sha256_of(content)));

  params = stat_params("nope.py");
  push("nope.py", {}, {}, kKey, &params);
  EXPECT_EQ(conn->pusher.error(), ErrorCode::ok);
  EXPECT_EQ(conn->pusher.stat_result().exists, 0);
  EXPECT_EQ(conn->pusher.stat_result().size, 0u);
}

TEST_F(SessionTest, RebootFlag) {
  const Bytes content = bytes_of(std::string("new firmware"));
  PushParams params = push_params("fw", content);
  params.kind = Kind::firmware;
  params.flags = flags::reboot;
  push("fw", content, {}, kKey, &params);
  expect_success("fw", content);
  EXPECT_EQ(conn->pusher.done().rebooting, 1);
  EXPECT_TRUE(conn->receiver.reboot_requested());
}

// --- timeouts
// ---------------------------------------------------------------------------------------------------------

TEST_F(SessionTest, SilentPusherTimesOutOnTheDevice) {
  cfg.idle_timeout_ms = 2000;
  const Bytes content = bytes_of(std::string("abc"));
  conn = std::make_unique<Connection>(dev, cfg, push_params("t", content));
  Receiver& r = conn->receiver;
  Pusher& p = conn->pusher;
  r.start(clock);
  const Bytes hello = bytes_of(r.output());
  r.output_consumed(hello.size());
  p.feed(hello.data(), hello.size(), clock);
  const Bytes req = bytes_of(p.output());
  p.output_consumed(req.size());
  r.feed(req.data(), req.size(), clock);
  const Bytes ready = bytes_of(r.output());
  r.output_consumed(ready.size());
  p.feed(ready.data(), ready.size(), clock);
  // The pusher never sends its DATA.
  r.tick(clock + 2001);
  const Bytes err = bytes_of(r.output());
  r.output_consumed(err.size());
  EXPECT_TRUE(r.finished());
  EXPECT_EQ(r.result(), ErrorCode::timeout);
  p.feed(err.data(), err.size(), clock + 2001);
  EXPECT_EQ(p.error(), ErrorCode::timeout);
  EXPECT_EQ(dev.partials.count("t"), 1u);  // kept for resume
}

}  // namespace
}  // namespace otter::test
