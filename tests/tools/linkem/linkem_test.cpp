// linkem as a real process between a real client and a real server on 127.0.0.1 (ephemeral ports). Timing checks
// assert lower bounds that the model guarantees (a link never delivers early) and generous upper bounds.
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "linkem_process.hpp"
#include "otter/linkem/linkem.hpp"
#include "otter/test/files.hpp"
#include "otter/test/tcp.hpp"

namespace otter::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// Sends `n` bytes through `to`, half-closes, and reads the sink's "got N\n" answer. Returns the answer.
std::string send_to_sink(std::uint16_t port, std::size_t n, std::uint64_t seed = 1) {
  TcpClient c("127.0.0.1", port);
  EXPECT_TRUE(c.send_all(random_bytes(n, seed)));
  c.shutdown_write();
  std::string answer;
  const std::string expected = "got " + std::to_string(n) + "\n";
  c.read_exact(expected.size(), answer, 30s);
  return answer;
}

TEST(Linkem, ListensOnAnEphemeralPortAndRelaysBothWays) {
  LoopServer sink(LoopServer::Mode::sink);
  LinkemProcess link({"--to", sink.address()});
  EXPECT_NE(link.port(), 0);
  EXPECT_EQ(send_to_sink(link.port(), 3 << 20), "got " + std::to_string(3 << 20) + "\n");
  auto closed = link.wait_closed();
  ASSERT_TRUE(closed) << link.output();
  EXPECT_EQ(closed->index, 1u);
  EXPECT_EQ(closed->up, 3u << 20) << closed->line;
  EXPECT_EQ(closed->down, std::string("got 3145728\n").size()) << closed->line;
  EXPECT_FALSE(closed->cut);
  auto rec = sink.wait_record(0);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->bytes, 3u << 20);
  EXPECT_FALSE(rec->reset);
}

TEST(Linkem, EchoedBytesArriveInOrderWithJitter) {
  LoopServer echo(LoopServer::Mode::echo);
  LinkemProcess link(
      {"--to", echo.address(), "--rate", "100mbit", "--delay", "5ms", "--jitter", "4ms", "--seed", "7"});
  TcpClient c("127.0.0.1", link.port());
  const std::string data = random_bytes(1 << 20, 42);
  ASSERT_TRUE(c.send_all(data));
  c.shutdown_write();
  std::string back;
  ASSERT_EQ(c.read_exact(data.size(), back, 30s), TcpClient::Status::ok);
  EXPECT_TRUE(back == data) << "bytes reordered or changed";
  EXPECT_TRUE(c.wait_closed(30s)) << "the echo's FIN was passed on";
  auto closed = link.wait_closed();
  ASSERT_TRUE(closed) << link.output();
  EXPECT_EQ(closed->up, data.size());
  EXPECT_EQ(closed->down, data.size());
}

TEST(Linkem, RateLimitsThroughput) {
  LoopServer sink(LoopServer::Mode::sink);
  LinkemProcess link({"--to", sink.address(), "--rate", "8mbit", "--delay", "1ms"});
  const auto t0 = Clock::now();
  EXPECT_EQ(send_to_sink(link.port(), 1 << 20), "got 1048576\n");
  const double secs = seconds_since(t0);
  // 1 MiB at 1,000,000 B/s is 1.049 s on the link.
  EXPECT_GE(secs, 1.0);
  EXPECT_LE(secs, 5.0);
  auto closed = link.wait_closed();
  ASSERT_TRUE(closed) << link.output();
  EXPECT_EQ(closed->up, 1u << 20);
}

TEST(Linkem, RateUnitsAreBytesOrBits) {
  LoopServer sink(LoopServer::Mode::sink);
  LinkemProcess link({"--to", sink.address(), "--rate", "500kB"});
  const auto t0 = Clock::now();
  EXPECT_EQ(send_to_sink(link.port(), 300000), "got 300000\n");
  EXPECT_GE(seconds_since(t0), 0.55);  // 300,000 B at 500,000 B/s = 0.6 s
  EXPECT_LE(seconds_since(t0), 5.0);
}

TEST(Linkem, DelayIsOneWay) {
  LoopServer echo(LoopServer::Mode::echo);
  LinkemProcess link({"--to", echo.address(), "--delay", "40ms"});
  TcpClient c("127.0.0.1", link.port());
  for (int i = 0; i < 5; ++i) {
    const auto t0 = Clock::now();
    ASSERT_TRUE(c.send_all("x"));
    std::string back;
    ASSERT_EQ(c.read_exact(1, back, 10s), TcpClient::Status::ok);
    const double rtt = seconds_since(t0);
    EXPECT_GE(rtt, 0.080) << "round trip " << i;
    EXPECT_LE(rtt, 1.0) << "round trip " << i;
  }
}

TEST(Linkem, CutAfterAnExactByteCount) {
  LoopServer sink(LoopServer::Mode::sink);
  LinkemProcess link({"--to", sink.address(), "--cut-after", "100000"});
  TcpClient c("127.0.0.1", link.port());
  c.send_all(random_bytes(1 << 20, 3));  // fails once the cut resets the connection
  EXPECT_TRUE(c.wait_closed(30s));
  auto closed = link.wait_closed();
  ASSERT_TRUE(closed) << link.output();
  EXPECT_TRUE(closed->cut) << closed->line;
  EXPECT_EQ(closed->at, 100000u) << closed->line;
  EXPECT_EQ(closed->up, 100000u) << closed->line;
  auto rec = sink.wait_record(0);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->bytes, 100000u) << "the device got exactly the bytes before the cut";
  EXPECT_TRUE(rec->reset) << "a cut is a reset, not a FIN";
}

TEST(Linkem, CutCountsTheDownDirectionWhenAsked) {
  LoopServer echo(LoopServer::Mode::echo);
  LinkemProcess link({"--to", echo.address(), "--cut-after", "5000", "--direction", "down"});
  TcpClient c("127.0.0.1", link.port());
  c.send_all(random_bytes(20000, 4));
  std::string back;
  EXPECT_NE(c.read_exact(20000, back, 30s), TcpClient::Status::ok);
  EXPECT_EQ(back.size(), 5000u);
  auto closed = link.wait_closed();
  ASSERT_TRUE(closed) << link.output();
  EXPECT_TRUE(closed->cut);
  EXPECT_EQ(closed->down, 5000u) << closed->line;
}

/// The cut offset linkem plans for connection 1 with --cut-random and this seed.
std::uint64_t random_cut_offset(std::uint16_t sink_port, const std::string& seed) {
  LinkemProcess link(
      {"--to", "127.0.0.1:" + std::to_string(sink_port), "--cut-random", "--cut-within", "200000", "--seed", seed});
  TcpClient c("127.0.0.1", link.port());
  c.send_all(random_bytes(300000, 5));
  c.wait_closed(30s);
  auto open = link.process().read_line_until(
      [](const std::string& l) { return l.find("conn 1 open") != std::string::npos; }, 30s);
  EXPECT_TRUE(open) << link.output();
  auto closed = link.wait_closed();
  EXPECT_TRUE(closed) << link.output();
  if (!open || !closed) return 0;
  const auto planned = line_field(*open, "cut-at");
  EXPECT_TRUE(planned) << *open;
  EXPECT_TRUE(closed->cut) << closed->line;
  EXPECT_EQ(closed->at, planned) << closed->line;
  EXPECT_EQ(closed->up, planned) << closed->line;
  EXPECT_GE(planned.value_or(0), 1u);
  EXPECT_LE(planned.value_or(0), 200000u);
  return planned.value_or(0);
}

TEST(Linkem, RandomCutIsAFunctionOfTheSeed) {
  LoopServer sink(LoopServer::Mode::sink);
  const auto a1 = random_cut_offset(sink.port(), "11");
  const auto a2 = random_cut_offset(sink.port(), "11");
  const auto b = random_cut_offset(sink.port(), "12");
  EXPECT_EQ(a1, a2);
  EXPECT_NE(a1, b);
  // The library computes the same plan as the process.
  linkem::Options o;
  o.cut_random = true;
  o.cut_within = 200000;
  o.seed = 11;
  EXPECT_EQ(linkem::planned_cut(o, 1), a1);
  EXPECT_FALSE(linkem::planned_cut(o, 2)) << "only the first connection gets the fault by default";
}

TEST(Linkem, CutConnectionsLimitsWhichConnectionsAreCut) {
  LoopServer sink(LoopServer::Mode::sink);
  LinkemProcess link({"--to", sink.address(), "--cut-after", "1000", "--cut-connections", "2"});
  for (int i = 1; i <= 3; ++i) {
    SCOPED_TRACE(i);
    const std::string answer = send_to_sink(link.port(), 50000);
    auto closed = link.wait_closed();
    ASSERT_TRUE(closed) << link.output();
    EXPECT_EQ(closed->index, static_cast<std::uint64_t>(i));
    if (i <= 2) {
      EXPECT_TRUE(closed->cut) << closed->line;
      EXPECT_EQ(closed->up, 1000u);
      EXPECT_EQ(answer, "");
    } else {
      EXPECT_FALSE(closed->cut) << closed->line;
      EXPECT_EQ(closed->up, 50000u);
      EXPECT_EQ(answer, "got 50000\n");
    }
  }
}

TEST(Linkem, StallDeliversNothingForTheStallTime) {
  LoopServer sink(LoopServer::Mode::sink);
  LinkemProcess link({"--to", sink.address(), "--stall-after", "10000", "--stall-for", "1s"});
  const auto t0 = Clock::now();
  EXPECT_EQ(send_to_sink(link.port(), 30000), "got 30000\n");
  EXPECT_GE(seconds_since(t0), 1.0);
  EXPECT_LE(seconds_since(t0), 10.0);
  EXPECT_TRUE(link.wait_line("stall at=10000 for=1000ms")) << link.output();
  auto closed = link.wait_closed();
  ASSERT_TRUE(closed) << link.output();
  EXPECT_EQ(closed->up, 30000u);
  auto rec = sink.wait_record(0);
  ASSERT_TRUE(rec);
  // The bytes before the offset may be delivered a little late (scheduling), never those after it early.
  EXPECT_GE(std::chrono::duration<double>(rec->max_gap).count(), 0.9);
  EXPECT_LE(std::chrono::duration<double>(rec->max_gap).count(), 5.0);
}

TEST(Linkem, SlowAfterDropsTheRate) {
  LoopServer sink(LoopServer::Mode::sink);
  // 100 kB at 80 Mbit/s takes 10 ms; the remaining 500 kB at 4 Mbit/s (500 kB/s) take 1 s.
  LinkemProcess link({"--to", sink.address(), "--rate", "80mbit", "--slow-after", "100000", "--slow-rate", "4mbit"});
  const auto t0 = Clock::now();
  EXPECT_EQ(send_to_sink(link.port(), 600000), "got 600000\n");
  EXPECT_GE(seconds_since(t0), 0.95);
  EXPECT_LE(seconds_since(t0), 6.0);
  EXPECT_TRUE(link.wait_line("slow at=100000")) << link.output();
}

TEST(Linkem, RefusedTargetClosesTheClient) {
  RefusedPort refused;
  LinkemProcess link({"--to", refused.address()});
  try {
    TcpClient c("127.0.0.1", link.port());
    EXPECT_TRUE(c.wait_closed(30s));
  } catch (const std::exception& e) {
    // linkem may reset the connection before connect() has reported success: closed all the same.
    EXPECT_NE(std::string(e.what()).find("reset"), std::string::npos) << e.what();
  }
  auto closed = link.wait_closed();
  ASSERT_TRUE(closed) << link.output();
  EXPECT_NE(closed->line.find("error=connect"), std::string::npos) << closed->line;
}

TEST(Linkem, BadArgumentsExitTwoWithAMessage) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"--to", "127.0.0.1"},
      {"--to", "127.0.0.1:99999"},
      {"--to", "example:80"},
      {"--to", "127.0.0.1:80", "--rate", "8mbps"},
      {"--to", "127.0.0.1:80", "--rate", "fast"},
      {"--to", "127.0.0.1:80", "--delay", "20parsecs"},
      {"--to", "127.0.0.1:80", "--delay", "-5ms"},
      {"--to", "127.0.0.1:80", "--cut-after", "100", "--cut-random"},
      {"--to", "127.0.0.1:80", "--cut-after", "lots"},
      {"--to", "127.0.0.1:80", "--stall-after", "100"},
      {"--to", "127.0.0.1:80", "--slow-after", "100"},
      {"--to", "127.0.0.1:80", "--delay", "1ms", "--jitter", "2ms"},
      {"--to", "127.0.0.1:80", "--direction", "sideways"},
      {"--to", "127.0.0.1:80", "--no-such-option"},
      {"--to", "127.0.0.1:80", "--listen", "127.0.0.1:port"},
  };
  for (const auto& args : cases) {
    std::vector<std::string> argv = {linkem_bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    SCOPED_TRACE(shown);
    Process p(argv);
    EXPECT_EQ(p.wait(20s), 2) << p.output();
    EXPECT_NE(p.stderr_text().find("linkem: "), std::string::npos) << p.output();
    EXPECT_EQ(p.stdout_text(), "") << p.output();
  }
}

TEST(Linkem, ParsersAcceptTheDocumentedUnits) {
  EXPECT_DOUBLE_EQ(*linkem::parse_rate("8mbit"), 1e6);
  EXPECT_DOUBLE_EQ(*linkem::parse_rate("100kbit"), 12500);
  EXPECT_DOUBLE_EQ(*linkem::parse_rate("1gbit"), 125e6);
  EXPECT_DOUBLE_EQ(*linkem::parse_rate("64kB"), 64000);
  EXPECT_DOUBLE_EQ(*linkem::parse_rate("2MB"), 2e6);
  EXPECT_DOUBLE_EQ(*linkem::parse_rate("500B"), 500);
  EXPECT_DOUBLE_EQ(*linkem::parse_rate("0"), 0);
  EXPECT_FALSE(linkem::parse_rate("8 mbit"));
  EXPECT_EQ(*linkem::parse_duration("20ms"), std::chrono::milliseconds(20));
  EXPECT_EQ(*linkem::parse_duration("250us"), std::chrono::microseconds(250));
  EXPECT_EQ(*linkem::parse_duration("1.5s"), std::chrono::milliseconds(1500));
  EXPECT_FALSE(linkem::parse_duration("5m"));
  EXPECT_EQ(*linkem::parse_bytes("256K"), 262144u);
  EXPECT_EQ(*linkem::parse_bytes("1MiB"), 1048576u);
  EXPECT_EQ(*linkem::parse_bytes("123"), 123u);
  EXPECT_FALSE(linkem::parse_bytes("1.5K"));
  EXPECT_EQ(linkem::parse_rate("8mbps").error().code, ErrorCode::invalid_argument);
}

}  // namespace
}  // namespace otter::test
