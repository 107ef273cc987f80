// Receiver (device side) driven by hand-made pusher bytes: HELLO, the request checks and their order, streaming,
// ACKs, commit, errors, timeouts, back-pressure.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>

#include "core_test_util.hpp"
#include "otter/core/receiver.hpp"

namespace otter::test {
namespace {

using namespace otter::core;

struct RecordingObserver final : ReceiverObserver {
  void on_begin(ByteView name, Kind kind, std::uint64_t size, std::uint64_t offset) override {
    begun_name = str_of(name);
    begun_kind = kind;
    begun_size = size;
    begun_offset = offset;
    ++begins;
  }
  void on_progress(std::uint64_t received, std::uint64_t /*size*/) override { last_progress = received; }
  void on_committed(ByteView name, Kind /*kind*/, bool reboot) override {
    committed_name = str_of(name);
    committed_reboot = reboot;
    ++commits;
  }
  void on_error(ErrorCode code, const char* /*message*/) override {
    last_error = code;
    ++errors;
  }
  std::string begun_name, committed_name;
  Kind begun_kind = Kind::file;
  std::uint64_t begun_size = 0, begun_offset = 0, last_progress = 0;
  bool committed_reboot = false;
  int begins = 0, commits = 0, errors = 0;
  ErrorCode last_error = ErrorCode::ok;
};

struct PushSpec {
  std::string name = "a/b.txt";
  Bytes content = bytes_of(std::string("hello world"));
  std::uint8_t kind = 0;
  std::uint8_t flags = 0;
  std::uint8_t version = 1;
  std::string key = kKey;
  std::optional<std::uint64_t> size;  ///< announced size (default: content size)
  std::optional<Bytes> sha;           ///< announced SHA-256 (default: of content)
};

class ReceiverTest : public ::testing::Test {
 protected:
  void start() {
    r = std::make_unique<Receiver>(cfg, storage, crypto, &obs);
    r->start(now);
    const auto f = split_frames(take());
    ASSERT_EQ(f.size(), 1u);
    ASSERT_EQ(f[0].type, 0x01);
    hello = f[0].payload;
    all_out.clear();
  }

  // Takes everything the receiver has to send.
  Bytes take() {
    const ByteView o = r->output();
    Bytes b = bytes_of(o);
    r->output_consumed(o.size);
    all_out.insert(all_out.end(), b.begin(), b.end());
    return b;
  }

  // Feeds bytes in pieces of at most `step`, draining output between calls; returns how many were consumed.
  std::size_t feed(const Bytes& b, std::size_t step = ~std::size_t{0}) {
    std::size_t i = 0;
    while (i < b.size()) {
      const std::size_t n = std::min(step, b.size() - i);
      const std::size_t c = r->feed(b.data() + i, n, now);
      i += c;
      const bool had_output = r->output().size != 0;
      take();
      if (c == 0 && !had_output) break;
    }
    return i;
  }

  Bytes push_frame(const PushSpec& s) {
    PushRequest m;
    crypto.random(m.client_nonce, kNonceSize);
    m.kind = static_cast<Kind>(s.kind);
    m.flags = s.flags;
    m.size = s.size ? *s.size : s.content.size();
    const Bytes sha = s.sha ? *s.sha : sha256_of(s.content);
    std::memcpy(m.sha256, sha.data(), kHashSize);
    m.name = view(s.name);
    Bytes f(3 + kMaxControlPayload);
    const std::size_t n = encode_push(m, f.data(), f.size());
    EXPECT_NE(n, 0u);
    f.resize(n);
    f[3] = s.version;
    seal(f, s.key);
    return f;
  }

  Bytes stat_frame(const std::string& name, const std::string& key = kKey) {
    StatRequest m;
    crypto.random(m.client_nonce, kNonceSize);
    m.name = view(name);
    Bytes f(3 + kMaxControlPayload);
    f.resize(encode_stat(m, f.data(), f.size()));
    seal(f, key);
    return f;
  }

  // Writes the request MAC (over this session's HELLO) into the last 32 bytes of a PUSH/STAT frame.
  void seal(Bytes& f, const std::string& key) {
    BackendCrypto c;
    const ByteView req(f.data() + 3, f.size() - 3 - kMacSize);
    ASSERT_TRUE(request_mac(c, view(key), view(hello), req, f.data() + f.size() - kMacSize));
  }

  static Bytes data_frames(const Bytes& content, std::size_t chunk) {
    Bytes s;
    for (std::size_t i = 0; i < content.size(); i += chunk) {
      const std::size_t n = std::min(chunk, content.size() - i);
      const Bytes f = frame(
          FrameType::data, Bytes(content.begin() + static_cast<long>(i), content.begin() + static_cast<long>(i + n)));
      s.insert(s.end(), f.begin(), f.end());
    }
    return s;
  }

  std::vector<Frame> frames() const { return split_frames(all_out); }

  // The ERROR frame the receiver sent (fails the test if none).
  ErrorCode sent_error(std::string* message = nullptr) {
    Bytes keep;
    auto e = find_error(all_out, &keep);
    if (!e) {
      ADD_FAILURE() << "no ERROR frame in " << hex(all_out, " ");
      return ErrorCode::ok;
    }
    if (message != nullptr) *message = str_of(e->message);
    return e->code;
  }

  void expect_refused(ErrorCode code) {
    EXPECT_EQ(sent_error(), code);
    EXPECT_EQ(r->result(), code);
    EXPECT_TRUE(r->finished());
    EXPECT_EQ(r->state(), Receiver::State::closed);
  }

  FakeDevice dev;
  FakeStorage storage{dev};
  TestCrypto crypto;
  RecordingObserver obs;
  ReceiverConfig cfg = device_config();
  std::unique_ptr<Receiver> r;
  Bytes hello;
  Bytes all_out;
  std::uint64_t now = 1'000'000;
};

// --- HELLO
// ----------------------------------------------------------------------------------------------------------

TEST_F(ReceiverTest, HelloCarriesTheConfiguration) {
  cfg.caps = caps::file | caps::resume;
  cfg.fw_state = FwState::valid;
  cfg.window = 8192;
  cfg.max_size = 1 << 20;
  dev.free = 123456789;
  start();
  auto h = decode_hello(view(hello));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->version, 1);
  EXPECT_EQ(h->caps, caps::file | caps::resume);  // no STAT: not configured
  EXPECT_EQ(h->fw_state, FwState::valid);
  EXPECT_EQ(h->window, 8192u);
  EXPECT_EQ(h->max_size, 1u << 20);
  EXPECT_EQ(h->free, 123456789u);
  EXPECT_EQ(str_of(h->id), kDeviceId);
  EXPECT_EQ(r->state(), Receiver::State::await_request);
  EXPECT_FALSE(r->finished());

  // A second receiver draws a different nonce.
  const Bytes first = hello;
  start();
  auto h2 = decode_hello(view(hello));
  ASSERT_TRUE(h2);
  EXPECT_NE(hex(h->nonce, 32), hex(h2->nonce, 32));
  EXPECT_NE(hex(h->nonce, 32), std::string(64, '0'));
  (void)first;
}

TEST_F(ReceiverTest, HelloUnlimitedMaxSizeAndMinimumWindow) {
  cfg.max_size = 0;
  cfg.window = 10;    // below the protocol minimum: raised
  cfg.caps = 0xFFFF;  // unknown bits are not advertised
  start();
  auto h = decode_hello(view(hello));
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->max_size, ~std::uint64_t{0});
  EXPECT_EQ(h->window, kMinWindow);
  EXPECT_EQ(h->caps, 0x3F);
}

TEST_F(ReceiverTest, RandomFailureIsInternal) {
  crypto.fail_random = true;
  r = std::make_unique<Receiver>(cfg, storage, crypto, &obs);
  r->start(now);
  take();
  const auto f = frames();
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, 0x7F);
  expect_refused(ErrorCode::internal);
}

TEST_F(ReceiverTest, BadDeviceIdIsInternal) {
  const std::string empty;
  cfg.device_id = view(empty);
  r = std::make_unique<Receiver>(cfg, storage, crypto, &obs);
  r->start(now);
  take();
  expect_refused(ErrorCode::internal);
}

TEST_F(ReceiverTest, NothingHappensBeforeStart) {
  r = std::make_unique<Receiver>(cfg, storage, crypto, &obs);
  const Bytes b = {1, 2, 3};
  EXPECT_EQ(r->feed(b.data(), b.size(), now), 0u);
  EXPECT_EQ(r->output().size, 0u);
  EXPECT_EQ(r->state(), Receiver::State::idle);
}

// --- happy paths
// ------------------------------------------------------------------------------------------------------

TEST_F(ReceiverTest, AcceptsAPushAndCommits) {
  start();
  PushSpec s;
  s.flags = flags::reboot;
  feed(push_frame(s));
  auto f = frames();
  ASSERT_EQ(f.size(), 1u);
  ASSERT_EQ(f[0].type, 0x02);
  auto ready = decode_ready(view(f[0].payload));
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->offset, 0u);
  EXPECT_EQ(r->state(), Receiver::State::receiving);
  EXPECT_EQ(obs.begun_name, "a/b.txt");
  EXPECT_EQ(obs.begun_size, s.content.size());

  feed(data_frames(s.content, 4));
  f = frames();
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[1].type, 0x03);
  EXPECT_EQ(*decode_ack(view(f[1].payload)), s.content.size());
  ASSERT_EQ(f[2].type, 0x04);
  auto done = decode_done(view(f[2].payload));
  ASSERT_TRUE(done);
  EXPECT_EQ(done->size, s.content.size());
  EXPECT_EQ(hex(done->sha256, 32), hex(sha256_of(s.content)));
  EXPECT_EQ(done->rebooting, 1);
  EXPECT_TRUE(r->reboot_requested());
  EXPECT_TRUE(r->finished());
  EXPECT_EQ(r->result(), ErrorCode::ok);
  EXPECT_EQ(dev.files.at("a/b.txt"), s.content);
  EXPECT_TRUE(dev.partials.empty());
  EXPECT_TRUE(dev.locked.empty());
  EXPECT_EQ(obs.commits, 1);
  EXPECT_EQ(obs.committed_name, "a/b.txt");
  EXPECT_TRUE(obs.committed_reboot);
  EXPECT_EQ(obs.last_progress, s.content.size());
}

TEST_F(ReceiverTest, ReadyMacProvesTheKey) {
  start();
  const Bytes push = push_frame(PushSpec{});
  feed(push);
  const auto f = frames();
  ASSERT_EQ(f.size(), 1u);
  auto ready = decode_ready(view(f[0].payload));
  ASSERT_TRUE(ready);
  BackendCrypto c;
  std::uint8_t want[kMacSize];
  ASSERT_TRUE(ready_mac(c, view(kKey), push.data() + push.size() - kMacSize, 0, want));
  EXPECT_EQ(hex(ready->mac, 32), hex(want, 32));
}

TEST_F(ReceiverTest, RebootFlagNeedsTheCapability) {
  cfg.caps = caps::file;
  start();
  PushSpec s;
  s.flags = flags::reboot;
  feed(push_frame(s));
  feed(data_frames(s.content, 100));
  const auto f = frames();
  ASSERT_EQ(f.back().type, 0x04);
  EXPECT_EQ(decode_done(view(f.back().payload))->rebooting, 0);
  EXPECT_FALSE(r->reboot_requested());
}

TEST_F(ReceiverTest, EmptyContentCommitsRightAfterReady) {
  start();
  PushSpec s;
  s.content.clear();
  feed(push_frame(s));
  const auto f = frames();
  ASSERT_EQ(f.size(), 2u);  // READY, DONE; no ACK: no byte arrived
  EXPECT_EQ(f[0].type, 0x02);
  EXPECT_EQ(f[1].type, 0x04);
  EXPECT_TRUE(r->finished());
  EXPECT_EQ(r->result(), ErrorCode::ok);
  ASSERT_EQ(dev.files.count("a/b.txt"), 1u);
  EXPECT_TRUE(dev.files.at("a/b.txt").empty());
}

TEST_F(ReceiverTest, FullyHeldPartialCommitsRightAfterReady) {
  PushSpec s;
  FakePartial p;
  p.size = s.content.size();
  std::memcpy(p.sha256, sha256_of(s.content).data(), 32);
  p.bytes = s.content;
  dev.partials[s.name] = p;
  start();
  feed(push_frame(s));
  const auto f = frames();
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(decode_ready(view(f[0].payload))->offset, s.content.size());
  EXPECT_EQ(f[1].type, 0x04);
  EXPECT_EQ(dev.files.at(s.name), s.content);
}

TEST_F(ReceiverTest, ResumesFromAHeldPartialCopy) {
  PushSpec s;
  s.content = bytes_of(std::string(5000, 'r'));
  s.content[4999] = 'z';
  FakePartial p;
  p.size = s.content.size();
  std::memcpy(p.sha256, sha256_of(s.content).data(), 32);
  p.bytes.assign(s.content.begin(), s.content.begin() + 3000);
  dev.partials[s.name] = p;
  start();
  feed(push_frame(s));
  ASSERT_EQ(frames().size(), 1u);
  EXPECT_EQ(decode_ready(view(frames()[0].payload))->offset, 3000u);
  EXPECT_EQ(r->received(), 3000u);
  EXPECT_EQ(obs.begun_offset, 3000u);
  feed(data_frames(Bytes(s.content.begin() + 3000, s.content.end()), 700));
  EXPECT_EQ(r->result(), ErrorCode::ok);
  EXPECT_EQ(dev.files.at(s.name), s.content);
  EXPECT_EQ(dev.bytes_written, 2000u);
}

TEST_F(ReceiverTest, WithoutResumeCapabilityAlwaysStartsAtZero) {
  cfg.caps = caps::file;
  PushSpec s;
  FakePartial p;
  p.size = s.content.size();
  std::memcpy(p.sha256, sha256_of(s.content).data(), 32);
  p.bytes.assign(s.content.begin(), s.content.begin() + 4);
  dev.partials[s.name] = p;
  start();
  feed(push_frame(s));
  ASSERT_EQ(frames().size(), 1u);
  EXPECT_EQ(decode_ready(view(frames()[0].payload))->offset, 0u);
  // Interrupted: the partial copy is not kept (it would never be used).
  feed(data_frames(Bytes(s.content.begin(), s.content.begin() + 3), 3));
  r->peer_closed();
  EXPECT_EQ(dev.partials.count(s.name), 0u);
  EXPECT_TRUE(dev.locked.empty());
}

// --- request checks, in order
// -----------------------------------------------------------------------------------------

TEST_F(ReceiverTest, WrongKeyIsAuthFailedAndNothingIsStored) {
  start();
  PushSpec s;
  s.key = "another-key-0123456789";
  feed(push_frame(s));
  expect_refused(ErrorCode::auth_failed);
  EXPECT_EQ(dev.begins, 0);
  EXPECT_TRUE(dev.files.empty());
  EXPECT_TRUE(dev.partials.empty());
  EXPECT_EQ(obs.last_error, ErrorCode::auth_failed);
}

TEST_F(ReceiverTest, TamperedFieldsAreAuthFailed) {
  // Byte offsets inside the PUSH frame (3-byte header first): nonce, kind, flags, size, sha256, name_len, name, mac.
  const std::vector<std::pair<const char*, std::size_t>> spots = {
      {"client_nonce", 3 + 1}, {"kind", 3 + 33},     {"flags", 3 + 34},       {"size", 3 + 42},
      {"sha256", 3 + 43 + 5},  {"name", 3 + 77 + 2}, {"mac", 3 + 77 + 7 + 3},
  };
  for (const auto& [what, at] : spots) {
    SCOPED_TRACE(what);
    start();
    Bytes f = push_frame(PushSpec{});
    f[at] ^= 0x01;
    feed(f);
    expect_refused(ErrorCode::auth_failed);
    EXPECT_EQ(dev.begins, 0);
  }
}

TEST_F(ReceiverTest, MacIsCheckedBeforeTheName) {
  start();
  PushSpec s;
  s.name = "../../etc/passwd";
  s.key = "wrong-key-wrong-key";
  feed(push_frame(s));
  expect_refused(ErrorCode::auth_failed);
}

TEST_F(ReceiverTest, MacIsCheckedBeforeKindAndSize) {
  cfg.caps = caps::stat;  // accepts no kind at all
  cfg.max_size = 1;
  start();
  PushSpec s;
  s.kind = 9;
  s.key = "wrong-key-wrong-key";
  feed(push_frame(s));
  expect_refused(ErrorCode::auth_failed);
}

TEST_F(ReceiverTest, BadNamesAreRefusedAfterAuthentication) {
  for (const std::string name : {"../x", "/etc/x", "a//b", ".otter/x", "a\\b"}) {
    SCOPED_TRACE(name);
    start();
    PushSpec s;
    s.name = name;
    feed(push_frame(s));
    expect_refused(ErrorCode::bad_name);
    EXPECT_EQ(dev.begins, 0);
  }
  start();
  PushSpec s;
  s.name = "";
  feed(push_frame(s));
  expect_refused(ErrorCode::bad_name);
}

TEST_F(ReceiverTest, NameIsCheckedBeforeKind) {
  cfg.caps = caps::file;
  start();
  PushSpec s;
  s.name = "../x";
  s.kind = 1;
  feed(push_frame(s));
  expect_refused(ErrorCode::bad_name);
}

TEST_F(ReceiverTest, KindMustBeAdvertised) {
  cfg.caps = caps::file;
  start();
  PushSpec s;
  s.kind = 1;  // firmware
  feed(push_frame(s));
  expect_refused(ErrorCode::unsupported_kind);

  start();
  s.kind = 7;  // no such kind
  feed(push_frame(s));
  expect_refused(ErrorCode::unsupported_kind);

  cfg.caps = caps::firmware;
  start();
  s.kind = 0;
  feed(push_frame(s));
  expect_refused(ErrorCode::unsupported_kind);
  EXPECT_EQ(dev.begins, 0);
}

TEST_F(ReceiverTest, KindIsCheckedBeforeSize) {
  cfg.caps = caps::file;
  cfg.max_size = 1;
  start();
  PushSpec s;
  s.kind = 1;
  feed(push_frame(s));
  expect_refused(ErrorCode::unsupported_kind);
}

TEST_F(ReceiverTest, VersionIsCheckedFirst) {
  start();
  PushSpec s;
  s.version = 2;
  s.key = "wrong-key-wrong-key";
  feed(push_frame(s));
  expect_refused(ErrorCode::unsupported_version);
}

TEST_F(ReceiverTest, TooLarge) {
  cfg.max_size = 10;
  start();
  PushSpec s;  // 11 bytes
  feed(push_frame(s));
  expect_refused(ErrorCode::too_large);
  EXPECT_EQ(dev.begins, 0);

  cfg.max_size = 11;
  start();
  feed(push_frame(s));
  EXPECT_EQ(frames().at(0).type, 0x02);
}

TEST_F(ReceiverTest, NoSpace) {
  dev.free = 10;
  start();
  feed(push_frame(PushSpec{}));  // 11 bytes
  expect_refused(ErrorCode::no_space);
  EXPECT_TRUE(dev.locked.empty());
  EXPECT_TRUE(dev.files.empty());
  EXPECT_EQ(dev.discards, 1);  // no empty partial copy left behind
  EXPECT_EQ(dev.suspends, 0);
  EXPECT_TRUE(dev.partials.empty());
}

TEST_F(ReceiverTest, NoSpaceKeepsBytesAlreadyHeld) {
  PushSpec s;
  FakePartial p;
  p.size = s.content.size();
  std::memcpy(p.sha256, sha256_of(s.content).data(), 32);
  p.bytes.assign(s.content.begin(), s.content.begin() + 6);
  dev.partials[s.name] = p;
  dev.free = 4;  // 11 - 6 held = 5 still needed
  start();
  feed(push_frame(s));
  expect_refused(ErrorCode::no_space);
  EXPECT_EQ(dev.suspends, 1);  // kept for a resume once space is freed
  EXPECT_EQ(dev.discards, 0);
  ASSERT_EQ(dev.partials.count(s.name), 1u);
  EXPECT_EQ(dev.partials[s.name].bytes.size(), 6u);
}

TEST_F(ReceiverTest, NoSpaceCountsHeldBytes) {
  PushSpec s;
  FakePartial p;
  p.size = s.content.size();
  std::memcpy(p.sha256, sha256_of(s.content).data(), 32);
  p.bytes.assign(s.content.begin(), s.content.begin() + 6);
  dev.partials[s.name] = p;
  dev.free = 5;  // 11 - 6 held = 5 still needed
  start();
  feed(push_frame(s));
  ASSERT_EQ(frames().at(0).type, 0x02);
  EXPECT_EQ(decode_ready(view(frames()[0].payload))->offset, 6u);
}

TEST_F(ReceiverTest, StorageErrorsFromBeginAreForwarded) {
  const std::vector<std::pair<ErrorCode, ErrorCode>> cases = {
      {ErrorCode::busy, ErrorCode::busy},         {ErrorCode::storage, ErrorCode::storage},
      {ErrorCode::bad_name, ErrorCode::bad_name}, {ErrorCode::no_space, ErrorCode::no_space},
      {ErrorCode::io, ErrorCode::internal},  // not a wire code: the device's own fault
  };
  for (const auto& [injected, sent] : cases) {
    SCOPED_TRACE(error_name(injected));
    dev.fail_begin = Error{injected, "injected"};
    start();
    feed(push_frame(PushSpec{}));
    expect_refused(sent);
    std::string msg;
    sent_error(&msg);
    EXPECT_EQ(msg, "injected");
  }
}

TEST_F(ReceiverTest, BusyWhileTheSameNameIsBeingReceived) {
  FakeStorage other(dev);
  BackendSha256 h;
  const std::uint8_t sha[32] = {};
  ASSERT_TRUE(other.begin(view(std::string("a/b.txt")), Kind::file, 3, sha, h));
  start();
  feed(push_frame(PushSpec{}));
  expect_refused(ErrorCode::busy);
  other.suspend();
}

TEST_F(ReceiverTest, HmacFailureIsInternal) {
  start();
  crypto.fail_hmac = true;
  feed(push_frame(PushSpec{}));
  expect_refused(ErrorCode::internal);
}

// --- framing violations
// -----------------------------------------------------------------------------------------------

TEST_F(ReceiverTest, GarbageIsProtocol) {
  start();
  feed(bytes_of(std::string("GET / HTTP/1.1\r\n\r\n")));
  expect_refused(ErrorCode::protocol);
}

TEST_F(ReceiverTest, UnknownFrameTypeIsProtocol) {
  start();
  feed(Bytes{0x42, 0x00, 0x00});
  expect_refused(ErrorCode::protocol);
}

TEST_F(ReceiverTest, DeviceFramesFromThePusherAreProtocol) {
  for (std::uint8_t t : {0x01, 0x02, 0x03, 0x04, 0x05}) {
    start();
    feed(Bytes{t, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0});
    expect_refused(ErrorCode::protocol);
  }
}

TEST_F(ReceiverTest, DataBeforeRequestIsProtocol) {
  start();
  feed(frame(FrameType::data, Bytes{1, 2, 3}));
  expect_refused(ErrorCode::protocol);
  EXPECT_EQ(dev.begins, 0);
}

TEST_F(ReceiverTest, ControlFrameTooLongIsProtocol) {
  start();
  Bytes f = {0x10, 0x04, 0x01};  // PUSH of 1025 bytes
  f.resize(3 + 1025, 0);
  const std::size_t consumed = feed(f);
  expect_refused(ErrorCode::protocol);
  EXPECT_EQ(consumed, 3u);  // refused at the header, the payload is never buffered
}

TEST_F(ReceiverTest, WrongRequestLengthIsProtocol) {
  start();
  Bytes f = push_frame(PushSpec{});
  f.push_back(0);
  put_u16(f.data() + 1, static_cast<std::uint16_t>(f.size() - 3));
  feed(f);
  expect_refused(ErrorCode::protocol);

  start();
  feed(frame(FrameType::push, Bytes(20, 1)));
  expect_refused(ErrorCode::protocol);

  start();
  feed(frame(FrameType::push, Bytes{}));
  expect_refused(ErrorCode::protocol);
}

TEST_F(ReceiverTest, TruncatedHeaderThenClose) {
  start();
  EXPECT_EQ(feed(Bytes{0x10, 0x00}), 2u);
  EXPECT_FALSE(r->finished());
  r->peer_closed();
  EXPECT_TRUE(r->finished());
  EXPECT_EQ(r->result(), ErrorCode::connection_closed);
  EXPECT_TRUE(all_out.empty());
  EXPECT_EQ(dev.begins, 0);
}

TEST_F(ReceiverTest, TooMuchDataIsProtocolAndKeepsThePartial) {
  start();
  PushSpec s;
  feed(push_frame(s));
  Bytes more = s.content;
  more.push_back('!');
  feed(data_frames(Bytes(more.begin(), more.begin() + 8), 8));
  feed(frame(FrameType::data, Bytes(more.begin() + 8, more.end())));  // 4 bytes, only 3 left
  expect_refused(ErrorCode::protocol);
  EXPECT_TRUE(dev.files.empty());
  ASSERT_EQ(dev.partials.count(s.name), 1u);
  EXPECT_EQ(dev.partials[s.name].bytes.size(), 8u);  // nothing past the announced size was written
  EXPECT_TRUE(dev.locked.empty());
}

TEST_F(ReceiverTest, EmptyDataFrameIsProtocol) {
  start();
  feed(push_frame(PushSpec{}));
  feed(frame(FrameType::data, Bytes{}));
  expect_refused(ErrorCode::protocol);
}

TEST_F(ReceiverTest, SecondRequestWhileReceivingIsProtocol) {
  start();
  feed(push_frame(PushSpec{}));
  feed(data_frames(bytes_of(std::string("hel")), 3));
  feed(push_frame(PushSpec{}));
  expect_refused(ErrorCode::protocol);
  EXPECT_EQ(dev.suspends, 1);
  EXPECT_EQ(dev.partials.at("a/b.txt").bytes.size(), 3u);
}

TEST_F(ReceiverTest, PusherErrorEndsTheSessionQuietly) {
  start();
  feed(push_frame(PushSpec{}));
  feed(data_frames(bytes_of(std::string("hel")), 3));
  take();
  all_out.clear();
  const std::string msg = "user canceled";
  Bytes e(300);
  e.resize(encode_error(ErrorCode::busy, view(msg), e.data(), e.size()));
  feed(e);
  EXPECT_TRUE(all_out.empty());  // the sender of ERROR closes: no answer
  EXPECT_TRUE(r->finished());
  EXPECT_EQ(r->result(), ErrorCode::busy);
  EXPECT_EQ(dev.suspends, 1);
  EXPECT_EQ(dev.partials.at("a/b.txt").bytes.size(), 3u);

  start();
  feed(frame(FrameType::error, Bytes{}));  // malformed ERROR still ends the session
  EXPECT_TRUE(r->finished());
  EXPECT_EQ(r->result(), ErrorCode::protocol);
}

// --- streaming, ACKs, back-pressure
// -----------------------------------------------------------------------------------

TEST_F(ReceiverTest, StreamsByteByByteAndAcksEveryQuarterWindow) {
  cfg.window = 4096;
  start();
  PushSpec s;
  std::mt19937_64 rng(7);
  s.content = random_bytes(rng, 10000);
  feed(push_frame(s));
  feed(data_frames(s.content, 3000), 1);
  std::vector<std::uint64_t> acks = ack_offsets(all_out);
  const std::vector<std::uint64_t> want = {1024, 2048, 3072, 4096, 5120, 6144, 7168, 8192, 9216, 10000};
  EXPECT_EQ(acks, want);
  EXPECT_EQ(r->result(), ErrorCode::ok);
  EXPECT_EQ(dev.files.at(s.name), s.content);
}

TEST_F(ReceiverTest, DataIsWrittenStraightFromTheCallersBuffer) {
  cfg.window = 1 << 20;
  start();
  PushSpec s;
  std::mt19937_64 rng(8);
  s.content = random_bytes(rng, 65535);
  feed(push_frame(s));
  const Bytes f = data_frames(s.content, 65535);
  // The 64 KiB frame in one feed: consumed at once, although the receiver's own buffers are tiny.
  EXPECT_EQ(r->feed(f.data(), f.size(), now), f.size());
  take();
  EXPECT_EQ(r->result(), ErrorCode::ok);
  EXPECT_EQ(dev.files.at(s.name), s.content);
}

TEST_F(ReceiverTest, BackPressureConsumesNothingWhileOutputIsPending) {
  start();
  r = std::make_unique<Receiver>(cfg, storage, crypto, &obs);
  r->start(now);
  hello = bytes_of(r->output());
  ASSERT_EQ(hello.size(), 3 + kHelloFixed + kDeviceId.size());
  hello.erase(hello.begin(), hello.begin() + 3);
  const Bytes push = push_frame(PushSpec{});
  EXPECT_EQ(r->feed(push.data(), push.size(), now), 0u);  // HELLO not taken yet
  r->output_consumed(10);
  EXPECT_EQ(r->feed(push.data(), push.size(), now), 0u);
  r->output_consumed(r->output().size);
  EXPECT_EQ(r->feed(push.data(), push.size(), now), push.size());
  EXPECT_EQ(r->output().data[0], 0x02);

  // With READY pending, DATA waits; nothing is lost.
  const Bytes data = data_frames(bytes_of(std::string("hello world")), 5);
  EXPECT_EQ(r->feed(data.data(), data.size(), now), 0u);
  r->output_consumed(r->output().size);
  std::size_t at = 0;
  while (at < data.size()) {
    at += r->feed(data.data() + at, data.size() - at, now);
    all_out.insert(all_out.end(), r->output().data, r->output().data + r->output().size);
    r->output_consumed(r->output().size);
  }
  EXPECT_EQ(r->result(), ErrorCode::ok);
  EXPECT_EQ(dev.files.at("a/b.txt"), bytes_of(std::string("hello world")));
}

// --- content verification and storage failures
// ------------------------------------------------------------------------

TEST_F(ReceiverTest, HashMismatchDiscardsAndKeepsTheTarget) {
  dev.put_file("a/b.txt", bytes_of(std::string("old")));
  start();
  PushSpec s;
  s.sha = sha256_of(bytes_of(std::string("something else")));
  feed(push_frame(s));
  feed(data_frames(s.content, 5));
  const auto f = frames();
  ASSERT_GE(f.size(), 3u);
  EXPECT_EQ(f[1].type, 0x03);  // the last byte is acknowledged, then the check fails
  expect_refused(ErrorCode::hash_mismatch);
  EXPECT_EQ(dev.files.at("a/b.txt"), bytes_of(std::string("old")));
  EXPECT_TRUE(dev.partials.empty());
  EXPECT_TRUE(dev.locked.empty());
  EXPECT_EQ(dev.discards, 1);
  EXPECT_EQ(dev.commits, 0);
}

// --- DIGEST_LAST (protocol.md 3.10)

class DigestLastReceiverTest : public ReceiverTest {
 protected:
  DigestLastReceiverTest() { cfg.caps = static_cast<std::uint16_t>(cfg.caps | caps::digest_last); }
  // A DIGEST_LAST PUSH of s (sha all zeros); remembers its MAC for digest_frame().
  Bytes push_dl(PushSpec s) {
    s.flags = static_cast<std::uint8_t>(s.flags | flags::digest_last);
    s.sha = Bytes(kHashSize, 0);
    Bytes f = push_frame(s);
    request_mac_.assign(f.end() - kMacSize, f.end());
    return f;
  }
  Bytes digest_frame(const Bytes& sha, const std::string& key = kKey) {
    Digest d;
    std::memcpy(d.sha256, sha.data(), kHashSize);
    BackendCrypto c;
    EXPECT_TRUE(digest_mac(c, view(key), request_mac_.data(), d.sha256, d.mac));
    Bytes f(3 + kDigestPayload);
    EXPECT_EQ(encode_digest(d, f.data(), f.size()), f.size());
    return f;
  }
  Bytes request_mac_;
};

TEST_F(DigestLastReceiverTest, CommitsAfterAnAuthenticDigest) {
  start();
  PushSpec s;
  feed(push_dl(s));
  auto f = frames();
  ASSERT_EQ(f.size(), 1u);
  ASSERT_EQ(f[0].type, 0x02);
  ASSERT_EQ(f[0].payload.size(), kReadyPrefixPayload);
  const auto ready = decode_ready(view(f[0].payload));
  ASSERT_TRUE(ready);
  EXPECT_TRUE(ready->has_prefix);
  EXPECT_EQ(hex(ready->prefix_sha256, 32), std::string(64, '0'));
  BackendCrypto c;
  std::uint8_t want[kMacSize];
  ASSERT_TRUE(ready_mac(c, view(kKey), request_mac_.data(), 0, ready->prefix_sha256, want));
  EXPECT_EQ(hex(ready->mac, 32), hex(want, 32));

  feed(data_frames(s.content, 4));
  EXPECT_EQ(r->state(), Receiver::State::receiving);  // all bytes in: waits for DIGEST
  EXPECT_EQ(dev.commits, 0);
  feed(digest_frame(sha256_of(s.content)));
  f = frames();
  ASSERT_EQ(f.back().type, 0x04);
  EXPECT_EQ(r->result(), ErrorCode::ok);
  EXPECT_EQ(dev.files.at("a/b.txt"), s.content);
  EXPECT_TRUE(dev.partials.empty());
}

TEST_F(DigestLastReceiverTest, WrongDigestIsHashMismatch) {
  dev.put_file("a/b.txt", bytes_of(std::string("old")));
  start();
  PushSpec s;
  feed(push_dl(s));
  feed(data_frames(s.content, 5));
  feed(digest_frame(sha256_of(bytes_of(std::string("other")))));
  expect_refused(ErrorCode::hash_mismatch);
  EXPECT_EQ(dev.files.at("a/b.txt"), bytes_of(std::string("old")));
  EXPECT_TRUE(dev.partials.empty());
}

TEST_F(DigestLastReceiverTest, DigestWithABadMacIsAuthFailedAndDiscarded) {
  start();
  PushSpec s;
  feed(push_dl(s));
  feed(data_frames(s.content, 5));
  feed(digest_frame(sha256_of(s.content), "not-the-device-key-at-all"));
  expect_refused(ErrorCode::auth_failed);
  EXPECT_EQ(dev.files.count("a/b.txt"), 0u);
  EXPECT_TRUE(dev.partials.empty());
  EXPECT_TRUE(dev.locked.empty());
}

TEST_F(DigestLastReceiverTest, DigestBeforeTheLastByteIsProtocol) {
  start();
  PushSpec s;
  feed(push_dl(s));
  const Bytes half(s.content.begin(), s.content.begin() + 5);
  feed(data_frames(half, 5));
  feed(digest_frame(sha256_of(s.content)));
  expect_refused(ErrorCode::protocol);
  EXPECT_EQ(dev.commits, 0);
  EXPECT_EQ(dev.partials.at("a/b.txt").bytes, half);  // kept for a resume
}

TEST_F(DigestLastReceiverTest, DigestWithAWrongLengthIsProtocol) {
  start();
  PushSpec s;
  feed(push_dl(s));
  feed(data_frames(s.content, 5));
  Bytes d = digest_frame(sha256_of(s.content));
  d.pop_back();
  d[2] = static_cast<std::uint8_t>(kDigestPayload - 1);
  feed(d);
  expect_refused(ErrorCode::protocol);
  EXPECT_EQ(dev.commits, 0);
}

TEST_F(DigestLastReceiverTest, DigestInAnOrdinaryPushIsProtocol) {
  start();
  PushSpec s;
  const Bytes push = push_frame(s);  // SHA-256 in the request
  request_mac_.assign(push.end() - kMacSize, push.end());
  feed(push);
  const Bytes half(s.content.begin(), s.content.begin() + 5);
  feed(data_frames(half, 5));
  feed(digest_frame(sha256_of(s.content)));
  expect_refused(ErrorCode::protocol);
}

TEST_F(DigestLastReceiverTest, DigestBeforeAnyRequestIsProtocol) {
  start();
  request_mac_.assign(kMacSize, 0);
  feed(digest_frame(Bytes(kHashSize, 1)));
  expect_refused(ErrorCode::protocol);
  EXPECT_EQ(dev.begins, 0);
}

TEST_F(DigestLastReceiverTest, DeviceWithoutTheCapabilityRefusesTheFlag) {
  cfg.caps = static_cast<std::uint16_t>(cfg.caps & ~caps::digest_last);
  start();
  feed(push_dl(PushSpec{}));
  expect_refused(ErrorCode::protocol);
  EXPECT_EQ(dev.begins, 0);
}

TEST_F(DigestLastReceiverTest, NonZeroShaWithTheFlagIsProtocol) {
  start();
  PushSpec s;
  s.flags = flags::digest_last;  // but the SHA-256 of the content in the request
  feed(push_frame(s));
  expect_refused(ErrorCode::protocol);
  EXPECT_EQ(dev.begins, 0);
}

TEST_F(DigestLastReceiverTest, UnknownFlagsAreProtocol) {
  start();
  PushSpec s;
  s.flags = 0x80;
  feed(push_frame(s));
  expect_refused(ErrorCode::protocol);
  EXPECT_EQ(dev.begins, 0);
}

TEST_F(DigestLastReceiverTest, ResumeReadyCarriesThePrefixDigest) {
  PushSpec s;
  s.content = bytes_of(std::string("0123456789abcdef"));
  FakePartial part;
  part.size = s.content.size();  // keyed by the unknown (all-zero) SHA-256
  part.bytes = Bytes(s.content.begin(), s.content.begin() + 6);
  dev.partials["a/b.txt"] = part;
  start();
  feed(push_dl(s));
  const auto ready = decode_ready(view(frames().at(0).payload));
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->offset, 6u);
  EXPECT_EQ(hex(ready->prefix_sha256, 32), hex(sha256_of(part.bytes)));
  feed(data_frames(Bytes(s.content.begin() + 6, s.content.end()), 4));
  feed(digest_frame(sha256_of(s.content)));
  EXPECT_EQ(r->result(), ErrorCode::ok);
  EXPECT_EQ(dev.files.at("a/b.txt"), s.content);
}

TEST_F(DigestLastReceiverTest, RestartDropsThePartialCopy) {
  PushSpec s;
  s.content = bytes_of(std::string("0123456789abcdef"));
  FakePartial part;
  part.size = s.content.size();
  part.bytes = bytes_of(std::string("XXXXXX"));
  dev.partials["a/b.txt"] = part;
  start();
  s.flags = flags::restart;
  feed(push_dl(s));
  const auto ready = decode_ready(view(frames().at(0).payload));
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->offset, 0u);
  feed(data_frames(s.content, 4));
  feed(digest_frame(sha256_of(s.content)));
  EXPECT_EQ(r->result(), ErrorCode::ok);
  EXPECT_EQ(dev.files.at("a/b.txt"), s.content);
}

TEST_F(ReceiverTest, WriteFailureIsForwardedAndThePartialDropped) {
  dev.fail_write_after = 4;
  dev.write_error = Error{ErrorCode::no_space, "disk full"};
  start();
  PushSpec s;
  feed(push_frame(s));
  feed(data_frames(s.content, 3));
  expect_refused(ErrorCode::no_space);
  std::string msg;
  sent_error(&msg);
  EXPECT_EQ(msg, "disk full");
  EXPECT_TRUE(dev.partials.empty());
  EXPECT_TRUE(dev.locked.empty());
}

TEST_F(ReceiverTest, CommitFailureIsForwarded) {
  dev.put_file("a/b.txt", bytes_of(std::string("old")));
  dev.fail_commit = Error{ErrorCode::storage, "rename failed"};
  start();
  PushSpec s;
  feed(push_frame(s));
  feed(data_frames(s.content, 100));
  expect_refused(ErrorCode::storage);
  EXPECT_EQ(dev.files.at("a/b.txt"), bytes_of(std::string("old")));
  EXPECT_FALSE(r->reboot_requested());
  EXPECT_TRUE(dev.locked.empty());
}

// --- timeouts and closing
// ----------------------------------------------------------------------------------------------

TEST_F(ReceiverTest, IdleTimeoutWaitingForTheRequest) {
  cfg.idle_timeout_ms = 5000;
  start();
  r->tick(now + 5000);
  EXPECT_FALSE(r->finished());
  EXPECT_TRUE(all_out.empty());
  r->tick(now + 5001);
  take();
  expect_refused(ErrorCode::timeout);
}

TEST_F(ReceiverTest, IdleTimeoutWhileReceivingSuspends) {
  cfg.idle_timeout_ms = 5000;
  start();
  feed(push_frame(PushSpec{}));
  now += 4000;
  feed(data_frames(bytes_of(std::string("hell")), 4));
  r->tick(now + 4999);  // input at `now` restarted the clock
  EXPECT_FALSE(r->finished());
  r->tick(now + 5001);
  take();
  expect_refused(ErrorCode::timeout);
  EXPECT_EQ(dev.suspends, 1);
  EXPECT_EQ(dev.partials.at("a/b.txt").bytes.size(), 4u);
  EXPECT_TRUE(dev.locked.empty());
}

TEST_F(ReceiverTest, UnreadFinalOutputIsDroppedAfterAnotherTimeout) {
  cfg.idle_timeout_ms = 1000;
  start();
  r->tick(now + 1001);
  EXPECT_FALSE(r->finished());  // ERROR TIMEOUT pending, the peer does not read
  EXPECT_EQ(r->state(), Receiver::State::closing);
  r->tick(now + 2002);
  EXPECT_TRUE(r->finished());
  EXPECT_EQ(r->output().size, 0u);
  EXPECT_EQ(r->result(), ErrorCode::timeout);
}

TEST_F(ReceiverTest, PeerClosedMidTransferSuspends) {
  start();
  feed(push_frame(PushSpec{}));
  feed(Bytes{0x12, 0x00, 0x05, 'h', 'e'});  // DATA frame cut in the middle
  r->peer_closed();
  EXPECT_TRUE(r->finished());
  EXPECT_EQ(r->result(), ErrorCode::connection_closed);
  EXPECT_EQ(dev.partials.at("a/b.txt").bytes, bytes_of(std::string("he")));
  EXPECT_TRUE(dev.locked.empty());
  EXPECT_EQ(r->feed(Bytes{1}.data(), 1, now), 0u);
}

TEST_F(ReceiverTest, PeerClosedAfterDoneKeepsSuccess) {
  start();
  PushSpec s;
  feed(push_frame(s));
  const Bytes d = data_frames(s.content, 100);
  EXPECT_EQ(r->feed(d.data(), d.size(), now), d.size());
  EXPECT_EQ(r->state(), Receiver::State::closing);  // ACK + DONE not taken
  r->peer_closed();
  EXPECT_EQ(r->result(), ErrorCode::ok);
  EXPECT_EQ(dev.files.at(s.name), s.content);
}

// --- STAT
// ---------------------------------------------------------------------------------------------------------------

TEST_F(ReceiverTest, StatExistingAndMissing) {
  const Bytes content = bytes_of(std::string("print('hi')\n"));
  dev.put_file("main.py", content);
  start();
  Bytes req = stat_frame("main.py");
  feed(req);
  auto f = frames();
  ASSERT_EQ(f.size(), 1u);
  ASSERT_EQ(f[0].type, 0x05);
  auto s = decode_stat_result(view(f[0].payload));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->exists, 1);
  EXPECT_EQ(s->size, content.size());
  EXPECT_EQ(hex(s->sha256, 32), hex(sha256_of(content)));
  BackendCrypto c;
  std::uint8_t want[kMacSize];
  ASSERT_TRUE(stat_mac(c, view(kKey), req.data() + req.size() - 32, 1, s->size, s->sha256, want));
  EXPECT_EQ(hex(s->mac, 32), hex(want, 32));
  EXPECT_TRUE(r->finished());
  EXPECT_EQ(r->result(), ErrorCode::ok);

  start();
  req = stat_frame("missing.py");
  feed(req);
  f = frames();
  ASSERT_EQ(f.size(), 1u);
  s = decode_stat_result(view(f[0].payload));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->exists, 0);
  EXPECT_EQ(s->size, 0u);
  EXPECT_EQ(hex(s->sha256, 32), std::string(64, '0'));
  ASSERT_TRUE(stat_mac(c, view(kKey), req.data() + req.size() - 32, 0, 0, s->sha256, want));
  EXPECT_EQ(hex(s->mac, 32), hex(want, 32));
}

TEST_F(ReceiverTest, StatChecks) {
  start();
  feed(stat_frame("main.py", "wrong-key-wrong-key"));
  expect_refused(ErrorCode::auth_failed);
  EXPECT_EQ(dev.stats, 0);

  start();
  feed(stat_frame("../main.py"));
  expect_refused(ErrorCode::bad_name);
  EXPECT_EQ(dev.stats, 0);

  dev.fail_stat = Error{ErrorCode::storage, "read error"};
  start();
  feed(stat_frame("main.py"));
  expect_refused(ErrorCode::storage);

  cfg.caps = caps::file;  // STAT not advertised: the frame is not allowed
  start();
  feed(stat_frame("main.py"));
  expect_refused(ErrorCode::protocol);
}

}  // namespace
}  // namespace otter::test
