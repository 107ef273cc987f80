// Pusher driven by a hand-made device: HELLO checks, the request, READY/DONE/STAT_RESULT authentication, window
// flow control, ACK rules, device errors, timeouts.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "core_test_util.hpp"
#include "otter/core/pusher.hpp"

namespace otter::test {
namespace {

using namespace otter::core;

class PusherTest : public ::testing::Test {
 protected:
  Bytes hello_frame(std::uint32_t window = 4096) {
    Hello h;
    h.caps = caps::file | caps::resume | caps::stat;
    h.window = window;
    h.max_size = 1 << 20;
    h.free = 1 << 21;
    crypto.random(h.nonce, kNonceSize);
    h.id = view(device_id);
    Bytes f(200);
    f.resize(encode_hello(h, f.data(), f.size()));
    return f;
  }

  // Creates the pusher, hands it a HELLO and takes its request.
  void begin(const PushParams& params, std::uint32_t window = 4096) {
    p = std::make_unique<Pusher>(params, crypto);
    const Bytes h = hello_frame(window);
    hello_payload.assign(h.begin() + 3, h.end());
    send(h);
    request = take();
  }

  void send(const Bytes& b) { EXPECT_EQ(p->feed(b.data(), b.size(), now), b.size()); }

  Bytes take() {
    Bytes b = bytes_of(p->output());
    p->output_consumed(b.size());
    return b;
  }

  const std::uint8_t* req_mac() const { return request.data() + request.size() - kMacSize; }

  Bytes ready(std::uint64_t offset, const std::string& key = kKey) {
    BackendCrypto c;
    Ready m;
    m.offset = offset;
    EXPECT_TRUE(ready_mac(c, view(key), req_mac(), offset, m.mac));
    Bytes f(64);
    f.resize(encode_ready(m, f.data(), f.size()));
    return f;
  }

  Bytes ack(std::uint64_t offset) {
    Bytes f(16);
    f.resize(encode_ack(offset, f.data(), f.size()));
    return f;
  }

  Bytes done(std::uint64_t size, const Bytes& sha, std::uint8_t rebooting = 0, const std::string& key = kKey) {
    BackendCrypto c;
    Done m;
    m.size = size;
    std::memcpy(m.sha256, sha.data(), kHashSize);
    m.rebooting = rebooting;
    EXPECT_TRUE(done_mac(c, view(key), req_mac(), size, m.sha256, rebooting, m.mac));
    Bytes f(128);
    f.resize(encode_done(m, f.data(), f.size()));
    return f;
  }

  Bytes stat_result(std::uint8_t exists, std::uint64_t size, const Bytes& sha, const std::string& key = kKey) {
    BackendCrypto c;
    StatResult m;
    m.exists = exists;
    m.size = size;
    std::memcpy(m.sha256, sha.data(), kHashSize);
    EXPECT_TRUE(stat_mac(c, view(key), req_mac(), exists, size, m.sha256, m.mac));
    Bytes f(128);
    f.resize(encode_stat_result(m, f.data(), f.size()));
    return f;
  }

  Bytes error_frame(ErrorCode code, const std::string& msg) {
    Bytes f(300);
    f.resize(encode_error(code, view(msg), f.data(), f.size()));
    return f;
  }

  // Sends every byte the window allows; returns how many.
  std::uint64_t pump() {
    std::uint64_t n = 0;
    while (const std::uint32_t len = p->data_ready()) {
      p->data_sent(len);
      n += len;
    }
    return n;
  }

  void expect_failed(ErrorCode code) {
    EXPECT_TRUE(p->finished());
    EXPECT_EQ(p->state(), Pusher::State::failed);
    EXPECT_EQ(p->error(), code) << error_name(p->error()) << ": " << p->error_message();
    EXPECT_NE(std::string(p->error_message()), "");
    EXPECT_EQ(p->output().size, 0u);
    EXPECT_EQ(p->data_ready(), 0u);
  }

  TestCrypto crypto;
  std::string device_id = "dev-7";
  std::string name = "fw/app.bin";
  Bytes content = bytes_of(std::string(10000, 'c'));
  std::unique_ptr<Pusher> p;
  Bytes hello_payload;
  Bytes request;
  std::uint64_t now = 5000;
};

// --- HELLO
// ----------------------------------------------------------------------------------------------------------

TEST_F(PusherTest, SendsAnAuthenticatedPush) {
  PushParams params = push_params(name, content);
  params.kind = Kind::firmware;
  params.flags = flags::reboot;
  begin(params);
  EXPECT_EQ(p->state(), Pusher::State::await_ready);
  EXPECT_EQ(str_of(p->hello().id), device_id);
  EXPECT_EQ(p->hello().window, 4096u);
  const auto f = split_frames(request);
  ASSERT_EQ(f.size(), 1u);
  ASSERT_EQ(f[0].type, 0x10);
  auto req = decode_push(view(f[0].payload));
  ASSERT_TRUE(req);
  EXPECT_EQ(str_of(req->name), name);
  EXPECT_EQ(req->kind, Kind::firmware);
  EXPECT_EQ(req->flags, flags::reboot);
  EXPECT_EQ(req->size, content.size());
  EXPECT_EQ(hex(req->sha256, 32), hex(sha256_of(content)));
  BackendCrypto c;
  std::uint8_t want[kMacSize];
  ASSERT_TRUE(request_mac(c, view(kKey), view(hello_payload),
                          ByteView(f[0].payload.data(), f[0].payload.size() - kMacSize), want));
  EXPECT_EQ(hex(req->mac, 32), hex(want, 32));
  EXPECT_EQ(p->data_ready(), 0u);  // nothing before READY

  // Client nonces are fresh.
  const std::string nonce1 = hex(req->client_nonce, 32);
  begin(params);
  auto req2 = decode_push(ByteView(request.data() + 3, request.size() - 3));
  ASSERT_TRUE(req2);
  EXPECT_NE(nonce1, hex(req2->client_nonce, 32));
}

TEST_F(PusherTest, SendsAnAuthenticatedStat) {
  begin(stat_params(name));
  const auto f = split_frames(request);
  ASSERT_EQ(f.size(), 1u);
  ASSERT_EQ(f[0].type, 0x11);
  auto req = decode_stat(view(f[0].payload));
  ASSERT_TRUE(req);
  EXPECT_EQ(str_of(req->name), name);
  BackendCrypto c;
  std::uint8_t want[kMacSize];
  ASSERT_TRUE(request_mac(c, view(kKey), view(hello_payload),
                          ByteView(f[0].payload.data(), f[0].payload.size() - kMacSize), want));
  EXPECT_EQ(hex(req->mac, 32), hex(want, 32));
}

TEST_F(PusherTest, HelloArrivingByteByByte) {
  p = std::make_unique<Pusher>(push_params(name, content), crypto);
  const Bytes h = hello_frame();
  for (std::uint8_t b : h) {
    EXPECT_EQ(p->output().size, 0u);
    EXPECT_EQ(p->feed(&b, 1, now), 1u);
  }
  EXPECT_EQ(p->state(), Pusher::State::await_ready);
  EXPECT_EQ(p->output().data[0], 0x10);
}

TEST_F(PusherTest, BadMagicIsNotAnOtterDevice) {
  p = std::make_unique<Pusher>(push_params(name, content), crypto);
  Bytes h = hello_frame();
  h[3] = 'X';
  send(h);
  expect_failed(ErrorCode::not_otter_device);
}

TEST_F(PusherTest, SomethingElseEntirelyIsNotAnOtterDevice) {
  p = std::make_unique<Pusher>(push_params(name, content), crypto);
  send(bytes_of(std::string("SSH-2.0-OpenSSH_9.2\r\n")));
  expect_failed(ErrorCode::not_otter_device);
}

TEST_F(PusherTest, OtherVersionSendsNoRequest) {
  p = std::make_unique<Pusher>(push_params(name, content), crypto);
  Bytes h = hello_frame();
  h[3 + 4] = 2;
  send(h);
  expect_failed(ErrorCode::unsupported_version);
}

TEST_F(PusherTest, MalformedHelloIsProtocol) {
  p = std::make_unique<Pusher>(push_params(name, content), crypto);
  Bytes h = hello_frame();
  h.push_back(0);
  put_u16(h.data() + 1, static_cast<std::uint16_t>(h.size() - 3));
  send(h);
  expect_failed(ErrorCode::protocol);
}

TEST_F(PusherTest, RandomFailureIsInternal) {
  p = std::make_unique<Pusher>(push_params(name, content), crypto);
  const Bytes h = hello_frame();
  crypto.fail_random = true;
  send(h);
  expect_failed(ErrorCode::internal);
}

// --- arguments
// --------------------------------------------------------------------------------------------------------

TEST_F(PusherTest, NameThatDoesNotFitIsInvalidArgument) {
  name = std::string(kMaxControlPayload - kPushFixed + 1, 'n');
  p = std::make_unique<Pusher>(push_params(name, content), crypto);
  expect_failed(ErrorCode::invalid_argument);
  name.pop_back();
  p = std::make_unique<Pusher>(push_params(name, content), crypto);
  EXPECT_FALSE(p->finished());
  send(hello_frame());
  EXPECT_EQ(p->output().size, 3 + kMaxControlPayload);

  name = std::string(kMaxControlPayload - kStatFixed + 1, 'n');
  p = std::make_unique<Pusher>(stat_params(name), crypto);
  expect_failed(ErrorCode::invalid_argument);
  name.pop_back();
  p = std::make_unique<Pusher>(stat_params(name), crypto);
  EXPECT_FALSE(p->finished());
}

TEST_F(PusherTest, DoesNotJudgeNamesItself) {
  name = "../not/my/call";
  begin(push_params(name, content));
  EXPECT_EQ(p->state(), Pusher::State::await_ready);
  EXPECT_EQ(request[0], 0x10);
}

TEST_F(PusherTest, ChunkSizeMustBeValid) {
  PushParams params = push_params(name, content);
  params.chunk_size = 0;
  p = std::make_unique<Pusher>(params, crypto);
  expect_failed(ErrorCode::invalid_argument);
  params.chunk_size = 65536;
  p = std::make_unique<Pusher>(params, crypto);
  expect_failed(ErrorCode::invalid_argument);
  params.chunk_size = 65535;
  p = std::make_unique<Pusher>(params, crypto);
  EXPECT_FALSE(p->finished());
}

// --- READY
// ---------------------------------------------------------------------------------------------------------------

TEST_F(PusherTest, ReadyFromADeviceWithoutTheKeyIsDeviceAuth) {
  begin(push_params(name, content));
  send(ready(0, "not-the-key-0123456789"));
  expect_failed(ErrorCode::device_auth);
}

TEST_F(PusherTest, ReadyFromAnotherSessionIsDeviceAuth) {
  begin(push_params(name, content));
  const Bytes old_ready = ready(0);
  begin(push_params(name, content));  // new session, new nonces
  send(old_ready);
  expect_failed(ErrorCode::device_auth);
}

TEST_F(PusherTest, ReadyWithTamperedOffsetIsDeviceAuth) {
  begin(push_params(name, content));
  Bytes r = ready(0);
  r[3 + 7] = 1;
  send(r);
  expect_failed(ErrorCode::device_auth);
}

TEST_F(PusherTest, ReadyOffsetBeyondSizeIsProtocol) {
  begin(push_params(name, content));
  send(ready(content.size() + 1));
  expect_failed(ErrorCode::protocol);
}

TEST_F(PusherTest, ReadyWithWrongLengthIsProtocol) {
  begin(push_params(name, content));
  Bytes r = ready(0);
  r.push_back(0);
  put_u16(r.data() + 1, static_cast<std::uint16_t>(r.size() - 3));
  send(r);
  expect_failed(ErrorCode::protocol);
}

TEST_F(PusherTest, ResumeStartsAtTheReadyOffset) {
  PushParams params = push_params(name, content);
  params.chunk_size = 1000;
  begin(params);
  send(ready(9500));
  EXPECT_EQ(p->resume_offset(), 9500u);
  EXPECT_EQ(p->data_offset(), 9500u);
  EXPECT_EQ(p->acked(), 9500u);
  EXPECT_EQ(p->data_ready(), 500u);
  p->data_sent(500);
  EXPECT_EQ(p->state(), Pusher::State::await_done);
  EXPECT_EQ(p->data_ready(), 0u);
}

TEST_F(PusherTest, FullyHeldGoesStraightToAwaitDone) {
  begin(push_params(name, content));
  send(ready(content.size()));
  EXPECT_EQ(p->state(), Pusher::State::await_done);
  EXPECT_EQ(p->data_ready(), 0u);
  send(done(content.size(), sha256_of(content)));
  EXPECT_EQ(p->state(), Pusher::State::succeeded);
  EXPECT_EQ(p->error(), ErrorCode::ok);
}

// --- window, ACKs
// --------------------------------------------------------------------------------------------------------

TEST_F(PusherTest, RespectsTheWindow) {
  PushParams params = push_params(name, content);
  params.chunk_size = 1000;
  begin(params, 4096);
  send(ready(0));
  std::vector<std::uint32_t> lens;
  while (const std::uint32_t len = p->data_ready()) {
    lens.push_back(len);
    p->data_sent(len);
  }
  EXPECT_EQ(lens, (std::vector<std::uint32_t>{1000, 1000, 1000, 1000, 96}));
  EXPECT_EQ(p->data_offset(), 4096u);
  send(ack(1024));
  EXPECT_EQ(p->acked(), 1024u);
  EXPECT_EQ(p->data_ready(), 1000u);
  EXPECT_EQ(pump(), 1024u);
  send(ack(5120));
  send(ack(5120));  // repeating an offset is fine
  EXPECT_EQ(pump(), 4096u);
  send(ack(9216));
  EXPECT_EQ(pump(), 784u);
  EXPECT_EQ(p->state(), Pusher::State::await_done);
  send(ack(10000));
  send(done(content.size(), sha256_of(content)));
  EXPECT_EQ(p->state(), Pusher::State::succeeded);
}

TEST_F(PusherTest, NoDataWhileControlOutputIsPending) {
  begin(push_params(name, content));
  // The request has been taken; a pusher with output pending sends no DATA.
  p = std::make_unique<Pusher>(push_params(name, content), crypto);
  const Bytes h = hello_frame();
  hello_payload.assign(h.begin() + 3, h.end());
  send(h);
  request = bytes_of(p->output());
  EXPECT_EQ(p->data_ready(), 0u);
  p->output_consumed(request.size() - 1);
  EXPECT_EQ(p->output().size, 1u);
  send(ready(0));
  EXPECT_EQ(p->data_ready(), 0u);
  p->output_consumed(1);
  EXPECT_GT(p->data_ready(), 0u);
}

TEST_F(PusherTest, AckBeyondSentIsProtocol) {
  begin(push_params(name, content));
  send(ready(0));
  p->data_sent(p->data_ready());
  send(ack(p->data_offset() + 1));
  expect_failed(ErrorCode::protocol);
}

TEST_F(PusherTest, AckGoingBackwardsIsProtocol) {
  begin(push_params(name, content));
  send(ready(100));
  pump();
  send(ack(2000));
  send(ack(1999));
  expect_failed(ErrorCode::protocol);
}

TEST_F(PusherTest, AckBelowTheResumeOffsetIsProtocol) {
  begin(push_params(name, content));
  send(ready(100));
  pump();
  send(ack(99));
  expect_failed(ErrorCode::protocol);
}

TEST_F(PusherTest, DataSentBeyondDataReadyIsRefused) {
  begin(push_params(name, content), 4096);
  send(ready(0));
  p->data_sent(4096);
  p->data_sent(1);
  expect_failed(ErrorCode::invalid_argument);
}

// --- DONE, STAT_RESULT
// ----------------------------------------------------------------------------------------------

TEST_F(PusherTest, SucceedsOnAValidDone) {
  begin(push_params(name, content), 1 << 20);
  send(ready(0));
  EXPECT_EQ(pump(), content.size());
  send(ack(content.size()));
  send(done(content.size(), sha256_of(content), 1));
  EXPECT_EQ(p->state(), Pusher::State::succeeded);
  EXPECT_TRUE(p->finished());
  EXPECT_EQ(p->error(), ErrorCode::ok);
  EXPECT_EQ(p->done().rebooting, 1);
  EXPECT_EQ(p->done().size, content.size());
  p->peer_closed();  // the device closes after DONE: still a success
  EXPECT_EQ(p->error(), ErrorCode::ok);
}

TEST_F(PusherTest, DoneBeforeAllDataIsProtocol) {
  begin(push_params(name, content));
  send(ready(0));
  pump();
  send(done(content.size(), sha256_of(content)));
  expect_failed(ErrorCode::protocol);
}

TEST_F(PusherTest, DoneWithABadMacIsDeviceAuth) {
  begin(push_params(name, content), 1 << 20);
  send(ready(0));
  pump();
  send(done(content.size(), sha256_of(content), 0, "not-the-key-0123456789"));
  expect_failed(ErrorCode::device_auth);
}

TEST_F(PusherTest, DoneWithOtherContentIsHashMismatch) {
  begin(push_params(name, content), 1 << 20);
  send(ready(0));
  pump();
  send(done(content.size(), sha256_of(bytes_of(std::string("other")))));
  expect_failed(ErrorCode::hash_mismatch);

  begin(push_params(name, content), 1 << 20);
  send(ready(0));
  pump();
  send(done(content.size() - 1, sha256_of(content)));
  expect_failed(ErrorCode::hash_mismatch);
}

TEST_F(PusherTest, StatResult) {
  begin(stat_params(name));
  const Bytes sha = sha256_of(content);
  send(stat_result(1, content.size(), sha));
  EXPECT_EQ(p->state(), Pusher::State::succeeded);
  EXPECT_EQ(p->stat_result().exists, 1);
  EXPECT_EQ(p->stat_result().size, content.size());
  EXPECT_EQ(hex(p->stat_result().sha256, 32), hex(sha));

  begin(stat_params(name));
  send(stat_result(1, content.size(), sha, "not-the-key-0123456789"));
  expect_failed(ErrorCode::device_auth);

  begin(stat_params(name));
  send(ready(0));  // a READY answers a PUSH, not a STAT
  expect_failed(ErrorCode::protocol);

  begin(push_params(name, content));
  send(stat_result(0, 0, Bytes(32, 0)));
  expect_failed(ErrorCode::protocol);
}

// --- errors, closing, timeouts
// ------------------------------------------------------------------------------------------

TEST_F(PusherTest, DeviceErrorSurfacesCodeAndMessage) {
  begin(push_params(name, content));
  send(error_frame(ErrorCode::no_space, "only 12 bytes free"));
  expect_failed(ErrorCode::no_space);
  EXPECT_STREQ(p->error_message(), "only 12 bytes free");
}

TEST_F(PusherTest, DeviceErrorInsteadOfHello) {
  p = std::make_unique<Pusher>(push_params(name, content), crypto);
  send(error_frame(ErrorCode::busy, "one connection at a time"));
  expect_failed(ErrorCode::busy);
  EXPECT_STREQ(p->error_message(), "one connection at a time");
}

TEST_F(PusherTest, DeviceErrorWhileSending) {
  begin(push_params(name, content));
  send(ready(0));
  pump();
  const std::string msg(255, 'e');
  send(error_frame(ErrorCode::storage, msg));
  expect_failed(ErrorCode::storage);
  EXPECT_EQ(std::string(p->error_message()), msg);
}

TEST_F(PusherTest, AnErrorIsNeverSuccess) {
  begin(push_params(name, content));
  send(error_frame(ErrorCode::ok, "all good, honest"));
  expect_failed(ErrorCode::protocol);
  EXPECT_STREQ(p->error_message(), "all good, honest");

  begin(push_params(name, content));
  send(error_frame(ErrorCode::device_auth, "local codes are not the device's"));
  expect_failed(ErrorCode::protocol);

  begin(push_params(name, content));
  send(frame(FrameType::error, Bytes{0, 4, 9}));  // msg_len says 9, none follows
  expect_failed(ErrorCode::protocol);
}

TEST_F(PusherTest, UnexpectedFramesAreProtocol) {
  begin(push_params(name, content));
  send(ack(0));  // before READY
  expect_failed(ErrorCode::protocol);

  begin(push_params(name, content));
  send(Bytes{0x55, 0, 0});  // unknown type
  expect_failed(ErrorCode::protocol);

  begin(push_params(name, content));
  send(frame(FrameType::data, Bytes{1}));  // DATA never flows to the pusher
  expect_failed(ErrorCode::protocol);

  begin(push_params(name, content));
  send(hello_frame());  // a second HELLO
  expect_failed(ErrorCode::protocol);

  begin(push_params(name, content));
  send(Bytes{0x02, 0x04, 0x01});  // control frame longer than 1024
  expect_failed(ErrorCode::protocol);
}

TEST_F(PusherTest, PeerClosedBeforeTheEndIsConnectionClosed) {
  begin(push_params(name, content));
  send(ready(0));
  pump();
  p->peer_closed();
  expect_failed(ErrorCode::connection_closed);

  p = std::make_unique<Pusher>(push_params(name, content), crypto);
  p->peer_closed();
  expect_failed(ErrorCode::connection_closed);
}

TEST_F(PusherTest, IdleTimeout) {
  PushParams params = push_params(name, content);
  params.idle_timeout_ms = 3000;
  begin(params);
  p->tick(now + 3000);
  EXPECT_FALSE(p->finished());
  now += 2000;
  send(ready(0));  // input restarts the clock
  p->tick(now + 3000);
  EXPECT_FALSE(p->finished());
  p->tick(now + 3001);
  expect_failed(ErrorCode::timeout);
}

TEST_F(PusherTest, IdleTimeoutWithoutAnyInput) {
  PushParams params = push_params(name, content);
  params.idle_timeout_ms = 3000;
  p = std::make_unique<Pusher>(params, crypto);
  p->tick(100);  // the clock starts at the first tick
  p->tick(3100);
  EXPECT_FALSE(p->finished());
  p->tick(3101);
  expect_failed(ErrorCode::timeout);
}

TEST_F(PusherTest, FirstErrorWins) {
  begin(push_params(name, content));
  send(error_frame(ErrorCode::busy, "busy"));
  p->peer_closed();
  p->tick(now + 1'000'000);
  expect_failed(ErrorCode::busy);
}

}  // namespace
}  // namespace otter::test
