// The transfer engine (otter/common/push_client*.hpp) against an in-process device (fake_device.hpp).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "fake_device.hpp"
#include "otter/common/hex.hpp"
#include "otter/common/push_client.hpp"
#include "otter/common/push_client_asio.hpp"
#include "otter/test/files.hpp"
#include "otter/test/temp_dir.hpp"

namespace otter {
namespace {

namespace asio = boost::asio;
using test::FakeDevice;
using namespace std::chrono_literals;

/// A TCP port on 127.0.0.1 that refuses connections: bound, never listening, held for the object's lifetime.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("ClosedPort: bind failed");
    }
    port_ = ntohs(a.sin_port);
  }
  ~ClosedPort() { ::close(fd_); }
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

class PushClientTest : public ::testing::Test {
 protected:
  PushOptions options(const FakeDevice& dev, const std::filesystem::path& file, const std::string& name) {
    PushOptions o;
    o.host = "127.0.0.1";
    o.port = dev.port();
    o.key = FakeDevice::Config{}.key;
    o.name = name;
    o.path = file.string();
    o.connect_timeout = 5s;
    o.idle_timeout = 10s;
    return o;
  }
  StatOptions stat_options(const FakeDevice& dev, const std::string& name) {
    StatOptions o;
    o.host = "127.0.0.1";
    o.port = dev.port();
    o.key = FakeDevice::Config{}.key;
    o.name = name;
    o.connect_timeout = 5s;
    o.idle_timeout = 10s;
    return o;
  }
  std::filesystem::path make_file(const std::string& rel, std::uint64_t size, std::uint64_t seed) {
    const auto p = dir_ / rel;
    test::write_random_file(p, size, seed);
    return p;
  }

  test::TempDir dir_{"otter-push-client"};
};

TEST_F(PushClientTest, PushesFilesOfManySizes) {
  FakeDevice dev({});
  for (const std::uint64_t size : {0ull, 1ull, 1000ull, 16384ull, 16385ull, 300000ull, (1ull << 20) + 7}) {
    SCOPED_TRACE(size);
    const auto file = make_file("f" + std::to_string(size), size, size);
    const std::string content = test::read_file(file);
    const auto r = push(options(dev, file, "dir/f" + std::to_string(size)));
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_FALSE(r->unchanged);
    EXPECT_EQ(r->device.id, "fake-1");
    EXPECT_EQ(r->device.window, 64u * 1024);
    EXPECT_EQ(r->resume_offset, 0u);
    EXPECT_EQ(r->bytes_sent, size);
    EXPECT_EQ(r->bytes_acked, size);
    EXPECT_EQ(r->total, size);
    EXPECT_EQ(to_hex(r->sha256), test::sha256_hex(content));
    EXPECT_FALSE(r->rebooting);
    std::string stored;
    ASSERT_TRUE(dev.file("dir/f" + std::to_string(size), stored));
    EXPECT_TRUE(stored == content);
  }
}

TEST_F(PushClientTest, ManySmallFramesPerBatch) {
  FakeDevice dev({});
  const auto file = make_file("small-frames", 500000, 3);
  auto o = options(dev, file, "small-frames");
  o.chunk_size = 1000;  // more frames than one gathered write takes
  const auto r = push(o);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->bytes_sent, 500000u);
  std::string stored;
  ASSERT_TRUE(dev.file("small-frames", stored));
  EXPECT_TRUE(stored == test::read_file(file));
}

TEST_F(PushClientTest, ProgressIsMonotonicAndReachesTotal) {
  FakeDevice dev({});
  const std::uint64_t size = 2 << 20;
  const auto file = make_file("p", size, 1);
  std::vector<std::uint64_t> seen;
  const auto r = push(options(dev, file, "p"), [&](std::uint64_t acked, std::uint64_t total) {
    EXPECT_EQ(total, size);
    seen.push_back(acked);
  });
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ(seen.front(), 0u);
  EXPECT_EQ(seen.back(), size);
  for (std::size_t i = 1; i < seen.size(); ++i) EXPECT_GT(seen[i], seen[i - 1]);
}

TEST_F(PushClientTest, StatBeforeAndAfter) {
  FakeDevice dev({});
  auto s = stat(stat_options(dev, "a/b.txt"));
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_FALSE(s->exists);
  EXPECT_EQ(s->size, 0u);
  EXPECT_EQ(s->device.id, "fake-1");

  const auto file = make_file("b.txt", 12345, 9);
  ASSERT_TRUE(push(options(dev, file, "a/b.txt")));
  s = stat(stat_options(dev, "a/b.txt"));
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_TRUE(s->exists);
  EXPECT_EQ(s->size, 12345u);
  EXPECT_EQ(to_hex(s->sha256), test::sha256_file_hex(file));
}

TEST_F(PushClientTest, ClaimedHashOfOtherContentIsHashMismatch) {
  FakeDevice dev({});
  dev.put_file("t", "old content");
  const auto file = make_file("t", 70000, 5);
  auto o = options(dev, file, "t");
  o.sha256 = sha256_bytes({});
  const auto r = push(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::hash_mismatch) << r.error().to_string();
  std::string stored;
  ASSERT_TRUE(dev.file("t", stored));
  EXPECT_EQ(stored, "old content");
}

TEST_F(PushClientTest, WrongKeyIsAuthFailed) {
  FakeDevice dev({});
  const auto file = make_file("k", 10, 5);
  auto o = options(dev, file, "k");
  o.key = "another-key-entirely-0123";
  const auto r = push(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::auth_failed) << r.error().to_string();
  std::string stored;
  EXPECT_FALSE(dev.file("k", stored));
}

TEST_F(PushClientTest, ImpostorDeviceIsDeviceAuthAndGetsNoData) {
  FakeDevice::Config cfg;
  cfg.mode = FakeDevice::Mode::forged_ready;
  FakeDevice dev(cfg);
  const auto file = make_file("secret", 100000, 5);
  const auto r = push(options(dev, file, "secret"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::device_auth) << r.error().to_string();
}

TEST_F(PushClientTest, GarbageSpeakerIsNotAnOtterDevice) {
  FakeDevice::Config cfg;
  cfg.mode = FakeDevice::Mode::garbage;
  FakeDevice dev(cfg);
  const auto file = make_file("g", 10, 5);
  const auto r = push(options(dev, file, "g"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().code == ErrorCode::not_otter_device || r.error().code == ErrorCode::protocol)
      << r.error().to_string();
}

TEST_F(PushClientTest, UnsupportedVersion) {
  FakeDevice::Config cfg;
  cfg.mode = FakeDevice::Mode::bad_version;
  FakeDevice dev(cfg);
  const auto s = stat(stat_options(dev, "x"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::unsupported_version) << s.error().to_string();
}

TEST_F(PushClientTest, SilentDeviceTimesOut) {
  FakeDevice::Config cfg;
  cfg.mode = FakeDevice::Mode::silent;
  FakeDevice dev(cfg);
  const auto file = make_file("s", 10, 5);
  auto o = options(dev, file, "s");
  o.idle_timeout = 300ms;
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = push(o);
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::timeout) << r.error().to_string();
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 5s);
}

TEST_F(PushClientTest, ClosedPortIsConnectFailedWithTheOsReason) {
  const ClosedPort closed;
  StatOptions o;
  o.host = "127.0.0.1";
  o.port = closed.port();
  o.key = FakeDevice::Config{}.key;
  o.name = "x";
  const auto r = stat(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::connect_failed);
  EXPECT_EQ(r.error().message, "connect to 127.0.0.1:" + std::to_string(closed.port()) + ": Connection refused");
}

TEST_F(PushClientTest, UnresolvableHostIsConnectFailed) {
  StatOptions o;
  o.host = "no-such-host.invalid";
  o.key = FakeDevice::Config{}.key;
  o.name = "x";
  o.connect_timeout = 10s;
  const auto r = stat(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::connect_failed);
  EXPECT_NE(r.error().message.find("no-such-host.invalid"), std::string::npos) << r.error().message;
}

TEST_F(PushClientTest, ConnectTimeout) {
  // A listener whose accept queue is full: the kernel drops further SYNs, so connect() hangs.
  const int l = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(l, 0), 0);
  ASSERT_EQ(::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len), 0);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    (void)::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fillers.push_back(c);
  }
  StatOptions o;
  o.host = "127.0.0.1";
  o.port = ntohs(a.sin_port);
  o.key = FakeDevice::Config{}.key;
  o.name = "x";
  o.connect_timeout = 300ms;
  o.idle_timeout = 300ms;
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = stat(o);
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  for (const int c : fillers) ::close(c);
  ::close(l);
  ASSERT_FALSE(r);
  // Either the SYN was dropped (connect timeout) or the kernel let it through and nobody spoke (idle timeout).
  if (r.error().code == ErrorCode::connect_failed) {
    EXPECT_NE(r.error().message.find("timed out after 0.3 s"), std::string::npos) << r.error().message;
  } else {
    EXPECT_EQ(r.error().code, ErrorCode::timeout) << r.error().to_string();
  }
  EXPECT_LT(elapsed, 5s);
}

TEST_F(PushClientTest, InvalidOptionsFailBeforeConnecting) {
  FakeDevice dev({});
  const auto file = make_file("v", 10, 5);

  auto o = options(dev, dir_ / "missing", "v");
  auto r = push(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::not_found);

  o = options(dev, dir_.path(), "v");
  r = push(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);

  o = options(dev, file, "v");
  o.size = 11;
  r = push(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);

  o = options(dev, file, "v");
  o.key = "short";
  r = push(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::config);

  o = options(dev, file, "v");
  o.chunk_size = 0;
  r = push(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);

  o = options(dev, file, std::string(2000, 'n'));
  r = push(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::bad_name);

  EXPECT_EQ(dev.connections(), 0);
}

TEST_F(PushClientTest, CutTransferResumesWithExactByteCounts) {
  FakeDevice::Config cfg;
  cfg.window = 64 * 1024;
  cfg.cut_after_bytes = 300 * 1024;
  FakeDevice dev(cfg);
  const std::uint64_t size = 1 << 20;
  const auto file = make_file("r", size, 77);

  auto r = push(options(dev, file, "r"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::connection_closed) << r.error().to_string();
  std::string stored;
  EXPECT_FALSE(dev.file("r", stored));
  const std::uint64_t held = dev.partial_size("r");
  // The device read 300 KiB of frames (a few hundred bytes of which are PUSH and headers) and wrote every content
  // byte it received.
  EXPECT_LE(held, cfg.cut_after_bytes);
  EXPECT_GE(held, cfg.cut_after_bytes - 1024);

  r = push(options(dev, file, "r"));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->resume_offset, held);
  EXPECT_EQ(r->bytes_sent, size - held);
  EXPECT_EQ(r->total, size);
  ASSERT_TRUE(dev.file("r", stored));
  EXPECT_TRUE(stored == test::read_file(file));
}

TEST_F(PushClientTest, DeviceWithoutDigestLastGetsTheHashInTheRequest) {
  FakeDevice dev({});  // no caps::digest_last: the client hashes the file on the connection, then requests
  const auto file = make_file("old", 200000, 5);
  auto r = push(options(dev, file, "old"));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(r->digest_last);
  EXPECT_EQ(to_hex(r->sha256), test::sha256_file_hex(file));
  EXPECT_TRUE(dev.wait_accepted(1, 5s));  // every connection of the push was accepted before it returned
  EXPECT_FALSE(dev.wait_accepted(2, 0ms));
}

TEST_F(PushClientTest, DigestLastSendsTheHashAfterTheDataAndResumes) {
  FakeDevice::Config cfg;
  cfg.digest_last = true;
  cfg.cut_after_bytes = 300 * 1024;
  FakeDevice dev(cfg);
  const std::uint64_t size = 1 << 20;
  const auto file = make_file("dl", size, 78);

  auto r = push(options(dev, file, "dl"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::connection_closed) << r.error().to_string();
  const std::uint64_t held = dev.partial_size("dl");
  EXPECT_LE(held, cfg.cut_after_bytes);
  EXPECT_GE(held, cfg.cut_after_bytes - 1024);

  r = push(options(dev, file, "dl"));  // the device proves its prefix; the client checks it and goes on
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->digest_last);
  EXPECT_EQ(r->resume_offset, held);
  EXPECT_EQ(r->bytes_sent, size - held);
  EXPECT_EQ(to_hex(r->sha256), test::sha256_file_hex(file));
  std::string stored;
  ASSERT_TRUE(dev.file("dl", stored));
  EXPECT_TRUE(stored == test::read_file(file));
  EXPECT_TRUE(dev.wait_accepted(2, 5s));  // every connection of the push was accepted before it returned
  EXPECT_FALSE(dev.wait_accepted(3, 0ms));
}

TEST_F(PushClientTest, DigestLastPartialOfOtherContentIsPushedAgainFromZero) {
  FakeDevice::Config cfg;
  cfg.digest_last = true;
  cfg.cut_after_bytes = 100 * 1024;
  FakeDevice dev(cfg);
  const std::uint64_t size = 400000;
  const auto v1 = make_file("v1", size, 1);
  const auto v2 = make_file("v2", size, 2);  // same size, other content, same name on the device
  ASSERT_FALSE(push(options(dev, v1, "same")));
  ASSERT_GT(dev.partial_size("same"), 0u);

  // First connection: READY offers v1's bytes, whose digest is not v2's prefix (RESUME_MISMATCH); the client
  // pushes again at once with RESTART.
  auto r = push(options(dev, v2, "same"));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->resume_offset, 0u);
  EXPECT_EQ(r->bytes_sent, size);
  EXPECT_TRUE(r->restarted);
  std::string stored;
  ASSERT_TRUE(dev.file("same", stored));
  EXPECT_TRUE(stored == test::read_file(v2));
  EXPECT_TRUE(dev.wait_accepted(3, 5s));  // every connection of the push was accepted before it returned
  EXPECT_FALSE(dev.wait_accepted(4, 0ms));
}

TEST_F(PushClientTest, SkipUnchanged) {
  FakeDevice dev({});
  const auto file = make_file("u", 5000, 1);
  auto o = options(dev, file, "u");
  o.skip_unchanged = true;
  auto r = push(o);  // absent on the device: pushed
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(r->unchanged);
  EXPECT_EQ(r->bytes_sent, 5000u);
  r = push(o);  // same content: nothing sent
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->unchanged);
  EXPECT_EQ(r->bytes_sent, 0u);
  EXPECT_EQ(r->device.id, "fake-1");
  EXPECT_EQ(to_hex(r->sha256), test::sha256_file_hex(file));
  dev.put_file("u", "different");
  r = push(o);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(r->unchanged);
  EXPECT_EQ(r->bytes_sent, 5000u);
}

TEST_F(PushClientTest, ConcurrentCoroutinesOnAThreadPool) {
  FakeDevice dev({});
  constexpr int kPushes = 6;
  std::vector<std::filesystem::path> files;
  for (int i = 0; i < kPushes; ++i) files.push_back(make_file("c" + std::to_string(i), 200000 + i, i));
  asio::thread_pool pool(2);
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  for (int i = 0; i < kPushes; ++i) {
    auto o = options(dev, files[static_cast<std::size_t>(i)], "c" + std::to_string(i));
    asio::co_spawn(pool, async_push(o), [&](std::exception_ptr e, Result<PushOutcome> r) {
      if (!e && r && r->bytes_sent == r->total) ++ok;
      ++done;
    });
  }
  pool.join();
  EXPECT_EQ(done.load(), kPushes);
  EXPECT_EQ(ok.load(), kPushes);
  for (int i = 0; i < kPushes; ++i) {
    std::string stored;
    ASSERT_TRUE(dev.file("c" + std::to_string(i), stored));
    EXPECT_TRUE(stored == test::read_file(files[static_cast<std::size_t>(i)]));
  }
}

TEST_F(PushClientTest, CancellationEndsTheTransfer) {
  FakeDevice::Config cfg;
  cfg.mode = FakeDevice::Mode::silent;
  FakeDevice dev(cfg);
  const auto file = make_file("x", 10, 1);
  asio::io_context io;
  asio::cancellation_signal cancel;
  std::optional<Result<PushOutcome>> result;
  asio::co_spawn(io, async_push(options(dev, file, "x")),
                 asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, Result<PushOutcome> r) {
                   result = e ? Result<PushOutcome>(make_error(ErrorCode::internal, "exception")) : std::move(r);
                 }));
  asio::steady_timer timer(io, 200ms);
  timer.async_wait([&](boost::system::error_code) { cancel.emit(asio::cancellation_type::terminal); });
  const auto t0 = std::chrono::steady_clock::now();
  io.run();
  ASSERT_TRUE(result.has_value());
  ASSERT_FALSE(*result);
  EXPECT_EQ(result->error().code, ErrorCode::canceled) << result->error().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

}  // namespace
}  // namespace otter
