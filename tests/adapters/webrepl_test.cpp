// The WebREPL adapter (common/src/adapters/webrepl.cpp) against the WebREPL simulator (otter-agent --mode webrepl),
// through the real CLI (`otter push --protocol webrepl`) and in-process (adapters::async_push), plus the simulator's
// own wire behaviour driven by hand. Real processes on loopback; every wait is bounded; nothing sleeps.
#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "adapter_fixture.hpp"
#include "otter/common/adapters_asio.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/fault_proxy.hpp"
#include "otter/test/files.hpp"
#include "otter/test/process.hpp"
#include "otter/test/tcp.hpp"
#include "otter/test/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
using namespace std::chrono_literals;
using nlohmann::json;
using otter::test::AgentProcess;
using otter::test::CliResult;
using otter::test::error_code_of;
using otter::test::error_message_of;
using otter::test::Process;
using otter::test::TcpClient;
using otter::test::TempDir;

constexpr const char* kPassword = "s3cret";

class WebreplTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.mkdir("device");
    password_file_ = (dir_ / "password").string();
    otter::test::write_file(password_file_, std::string(kPassword) + "\n");
    wrong_password_file_ = (dir_ / "wrong").string();
    otter::test::write_file(wrong_password_file_, "notit\n");
    agent_ = std::make_unique<AgentProcess>(
        otter::test::simulator_argv("webrepl", root_, "wr-1", {"--password-file", password_file_}));
  }

  void TearDown() override {
    if (agent_) {
      EXPECT_EQ(agent_->stop(), 0) << agent_->output();
    }
  }

  [[nodiscard]] std::string address() const { return agent_->device().address(); }

  static CliResult push(const std::vector<std::string>& args) { return otter::test::push_cli("webrepl", args); }

  static otter::Result<otter::adapters::Outcome> push_in_process(otter::adapters::Request request,
                                                                 otter::adapters::Progress progress = {}) {
    return otter::test::push_in_process(otter::adapters::Protocol::webrepl, std::move(request), std::move(progress));
  }

  [[nodiscard]] otter::adapters::Request request(const fs::path& file, const std::string& name) const {
    otter::adapters::Request r;
    r.host = agent_->device().host;
    r.port = agent_->device().port;
    r.path = file.string();
    r.name = name;
    r.password = kPassword;
    return r;
  }

  TempDir dir_{"otter-webrepl"};
  fs::path root_;
  std::string password_file_;
  std::string wrong_password_file_;
  std::unique_ptr<AgentProcess> agent_;
};

// ---- A hand-driven WebSocket client, as webrepl_cli.py does it (unmasked frames, which the device accepts) ----

std::string read_http_head(TcpClient& c) {
  std::string head;
  std::string byte;
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < 4096) {
    byte.clear();
    if (c.read_exact(1, byte, 5s) != TcpClient::Status::ok) break;
    head += byte;
  }
  return head;
}

std::string frame(std::uint8_t type, const std::string& payload) {
  std::string f;
  f += static_cast<char>(type);
  f += static_cast<char>(payload.size());  // < 126 here
  return f + payload;
}

/// Reads one unmasked frame with a 7-bit length: (type, payload), or nullopt.
std::optional<std::pair<int, std::string>> read_frame(TcpClient& c) {
  std::string h;
  if (c.read_exact(2, h, 5s) != TcpClient::Status::ok) return std::nullopt;
  const auto len = static_cast<std::size_t>(static_cast<std::uint8_t>(h[1]) & 0x7f);
  std::string p;
  if (len != 0 && c.read_exact(len, p, 5s) != TcpClient::Status::ok) return std::nullopt;
  return std::pair{static_cast<std::uint8_t>(h[0]), p};
}

const char* kUpgrade =
    "GET / HTTP/1.1\r\nHost: device\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// ---------------------------------------------------------------------------------------------------------------

TEST_F(WebreplTest, BinaryPayloadArrivesWhole) {
  const auto file = dir_ / "firmware.bin";
  otter::test::write_random_file(file, 200 * 1024 + 777, 7);
  const auto r = push({file.string(), "--to", address(), "--password-file", password_file_});
  ASSERT_EQ(r.exit, 0) << r.log;
  EXPECT_TRUE(r.out["ok"].get<bool>()) << r.log;
  EXPECT_EQ(r.out["protocol"], "webrepl");
  EXPECT_EQ(r.out["size"].get<std::uint64_t>(), 200 * 1024 + 777);
  EXPECT_EQ(r.out["bytes_sent"].get<std::uint64_t>(), 200 * 1024 + 777);
  EXPECT_TRUE(r.out["confirmed"].get<bool>());
  EXPECT_FALSE(r.out["verified"].get<bool>());
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "firmware.bin"), otter::test::sha256_file_hex(file));
}

TEST_F(WebreplTest, TextPayloadUnderAnotherName) {
  const auto file = dir_ / "app.py";
  std::string text;
  for (int i = 0; i < 300; ++i) text += "print('line " + std::to_string(i) + "')\r\n";
  otter::test::write_file(file, text);
  const auto r = push({file.string(), "--to", address(), "--password-file", password_file_, "--as", "/main.py"});
  ASSERT_EQ(r.exit, 0) << r.log;
  EXPECT_TRUE(r.out["confirmed"].get<bool>());
  EXPECT_EQ(otter::test::read_file(root_ / "main.py"), text);
}

TEST_F(WebreplTest, VerifyReadsTheFileBack) {
  const auto file = dir_ / "data.bin";
  otter::test::write_random_file(file, 64 * 1024 + 13, 11);
  const auto r = push({file.string(), "--to", address(), "--password-file", password_file_, "--verify"});
  ASSERT_EQ(r.exit, 0) << r.log;
  EXPECT_TRUE(r.out["confirmed"].get<bool>());
  EXPECT_TRUE(r.out["verified"].get<bool>());
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "data.bin"), otter::test::sha256_file_hex(file));
}

TEST_F(WebreplTest, EmptyFileWithVerify) {
  const auto file = dir_ / "empty.txt";
  otter::test::write_file(file, "");
  const auto r = push({file.string(), "--to", address(), "--password-file", password_file_, "--verify"});
  ASSERT_EQ(r.exit, 0) << r.log;
  EXPECT_TRUE(r.out["verified"].get<bool>());
  EXPECT_TRUE(fs::exists(root_ / "empty.txt"));
  EXPECT_EQ(fs::file_size(root_ / "empty.txt"), 0U);
}

TEST_F(WebreplTest, WrongPasswordIsAuthFailed) {
  const auto file = dir_ / "a.txt";
  otter::test::write_file(file, "hello\n");
  const auto r = push({file.string(), "--to", address(), "--password-file", wrong_password_file_});
  EXPECT_EQ(r.exit, 1) << r.log;
  EXPECT_EQ(error_code_of(r), 4) << r.log;  // AUTH_FAILED
  EXPECT_NE(error_message_of(r).find("Access denied"), std::string::npos) << r.log;
  EXPECT_FALSE(fs::exists(root_ / "a.txt"));
}

TEST_F(WebreplTest, SecondSessionIsBusyThenFreed) {
  // Session 1, by hand: upgrade, prompt, login — and keep it open.
  TcpClient first(agent_->device().host, agent_->device().port);
  ASSERT_TRUE(first.send_all(kUpgrade));
  const std::string head = read_http_head(first);
  ASSERT_NE(head.find("101 Switching Protocols"), std::string::npos) << head;
  ASSERT_NE(head.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), std::string::npos) << head;
  auto prompt = read_frame(first);
  ASSERT_TRUE(prompt);
  EXPECT_EQ(prompt->first, 0x81);
  EXPECT_EQ(prompt->second, "Password: ");
  ASSERT_TRUE(first.send_all(frame(0x81, std::string(kPassword) + "\r")));
  auto banner = read_frame(first);
  ASSERT_TRUE(banner);
  EXPECT_EQ(banner->second, "\r\nWebREPL connected\r\n>>> ");

  const auto file = dir_ / "b.txt";
  otter::test::write_file(file, "second\n");
  const auto busy = push({file.string(), "--to", address(), "--password-file", password_file_});
  EXPECT_EQ(busy.exit, 1) << busy.log;
  EXPECT_EQ(error_code_of(busy), 7) << busy.log;  // BUSY
  EXPECT_NE(error_message_of(busy).find("another WebREPL session is open"), std::string::npos) << busy.log;

  // Close session 1 with a WebSocket close: the device answers 0x88 0x00 and closes; the slot is free again.
  ASSERT_TRUE(first.send_all(std::string("\x88\x00", 2)));
  auto reply = read_frame(first);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->first, 0x88);
  EXPECT_TRUE(first.wait_closed(5s));
  const auto ok = push({file.string(), "--to", address(), "--password-file", password_file_});
  EXPECT_EQ(ok.exit, 0) << ok.log;
  EXPECT_EQ(otter::test::read_file(root_ / "b.txt"), "second\n");
}

TEST_F(WebreplTest, NameOf64BytesIsRefusedBeforeConnecting) {
  const auto file = dir_ / "c.txt";
  otter::test::write_file(file, "x");
  otter::test::RefusedPort nobody;  // a connection attempt would give CONNECT_FAILED instead
  const std::string name(64, 'n');
  const auto r = push({file.string(), "--to", nobody.address(), "--password-file", password_file_, "--as", name});
  EXPECT_EQ(r.exit, 1) << r.log;
  EXPECT_EQ(error_code_of(r), 1) << r.log;  // BAD_NAME
  EXPECT_NE(error_message_of(r).find("63"), std::string::npos) << r.log;

  // 63 bytes is fine.
  const std::string ok_name(63, 'n');
  const auto ok = push({file.string(), "--to", address(), "--password-file", password_file_, "--as", ok_name});
  EXPECT_EQ(ok.exit, 0) << ok.log;
  EXPECT_TRUE(fs::exists(root_ / ok_name));
}

TEST_F(WebreplTest, PasswordLengthIsCheckedBeforeConnecting) {
  const auto file = dir_ / "d.txt";
  otter::test::write_file(file, "x");
  otter::test::RefusedPort nobody;
  const auto long_pw = (dir_ / "long").string();
  otter::test::write_file(long_pw, "0123456789\n");
  const auto r = push({file.string(), "--to", nobody.address(), "--password-file", long_pw});
  EXPECT_EQ(error_code_of(r), 104) << r.log;  // INVALID_ARGUMENT
}

TEST_F(WebreplTest, DeviceAbsentIsConnectFailed) {
  const auto file = dir_ / "e.txt";
  otter::test::write_file(file, "x");
  otter::test::RefusedPort nobody;
  const auto r = push({file.string(), "--to", nobody.address(), "--password-file", password_file_});
  EXPECT_EQ(r.exit, 1) << r.log;
  EXPECT_EQ(error_code_of(r), 100) << r.log;  // CONNECT_FAILED
}

TEST_F(WebreplTest, MissingDirectoryOnTheDeviceClosesTheConnection) {
  const auto file = dir_ / "f.py";
  otter::test::write_file(file, "x = 1\n");
  const auto r = push({file.string(), "--to", address(), "--password-file", password_file_, "--as", "lib/f.py"});
  EXPECT_EQ(r.exit, 1) << r.log;
  EXPECT_EQ(error_code_of(r), 101) << r.log;  // CONNECTION_CLOSED
  EXPECT_NE(error_message_of(r).find("cannot open the file"), std::string::npos) << r.log;
}

TEST_F(WebreplTest, CutMidTransferIsReportedAndLeavesAPartialFile) {
  const auto file = dir_ / "big.bin";
  otter::test::write_random_file(file, 512 * 1024, 3);
  otter::test::FaultProxy proxy(agent_->device().port, otter::test::ProxyFaults::cut(150 * 1024));
  const auto r =
      push({file.string(), "--to", "127.0.0.1:" + std::to_string(proxy.port()), "--password-file", password_file_});
  EXPECT_TRUE(proxy.wait_done(30s));
  EXPECT_TRUE(proxy.cut());
  EXPECT_EQ(r.exit, 1) << r.log;
  EXPECT_EQ(error_code_of(r), 101) << r.log;  // CONNECTION_CLOSED
  EXPECT_NE(error_message_of(r).find("partial"), std::string::npos) << r.log;
  // The pusher may exit before the device has read what arrived: wait for it to see the connection end.
  ASSERT_TRUE(agent_->process().wait_for_output("session from", 10s, true)) << agent_->output();
  ASSERT_TRUE(agent_->process().wait_for_output("ended", 10s, true)) << agent_->output();
  // The stock device writes the target directly: what arrived before the cut is there, the rest is not.
  ASSERT_TRUE(fs::exists(root_ / "big.bin"));
  EXPECT_LT(fs::file_size(root_ / "big.bin"), 512U * 1024U);
  // And the device serves the next session once it has seen the connection end.
  const auto again = push({file.string(), "--to", address(), "--password-file", password_file_, "--verify"});
  EXPECT_EQ(again.exit, 0) << again.log;
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "big.bin"), otter::test::sha256_file_hex(file));
}

TEST_F(WebreplTest, InProcessProgressAndOneMebibyteFigure) {
  const auto file = dir_ / "one.bin";
  otter::test::write_random_file(file, 1024 * 1024, 5);
  std::vector<std::uint64_t> seen;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = push_in_process(request(file, "one.bin"), [&](std::uint64_t done, std::uint64_t total) {
    EXPECT_EQ(total, 1024U * 1024U);
    seen.push_back(done);
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->confirmed);
  EXPECT_EQ(r->bytes_sent, 1024U * 1024U);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front(), 0U);
  EXPECT_EQ(seen.back(), 1024U * 1024U);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  RecordProperty("webrepl_1MiB_seconds", std::to_string(seconds));
  std::printf("webrepl: 1 MiB pushed over loopback in %.3f s\n", seconds);
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "one.bin"), otter::test::sha256_file_hex(file));
}

TEST_F(WebreplTest, SilentPeerIsTimeoutAndCancelIsCanceled) {
  const auto file = dir_ / "g.txt";
  otter::test::write_file(file, "x");
  // A listener that never accepts: the TCP connect completes (backlog), the upgrade is never answered.
  const auto silent = otter::test::listen_loopback(4, "silent");
  auto req = request(file, "g.txt");
  req.port = silent.port;
  req.idle_timeout = 300ms;
  auto r = push_in_process(req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, otter::ErrorCode::timeout) << r.error().to_string();

  // Cancellation through the awaiting coroutine's slot.
  req.idle_timeout = 60s;
  asio::io_context io;
  asio::cancellation_signal cancel;
  std::optional<otter::Result<otter::adapters::Outcome>> result;
  asio::co_spawn(io, otter::adapters::async_push(otter::adapters::Protocol::webrepl, req),
                 asio::bind_cancellation_slot(cancel.slot(),
                                              [&](std::exception_ptr e, otter::Result<otter::adapters::Outcome> out) {
                                                if (e) {
                                                  result = otter::make_error(otter::ErrorCode::internal, "exception");
                                                } else {
                                                  result = std::move(out);
                                                }
                                              }));
  asio::steady_timer t(io, 200ms);
  t.async_wait([&](const boost::system::error_code&) { cancel.emit(asio::cancellation_type::terminal); });
  io.run_for(30s);
  ::close(silent.fd);
  ASSERT_TRUE(result);
  ASSERT_FALSE(*result);
  EXPECT_EQ(result->error().code, otter::ErrorCode::canceled) << result->error().to_string();
}

// ---- The simulator's wire behaviour, as the device's ----

TEST_F(WebreplTest, SimulatorMatchesHeaderNamesCaseSensitively) {
  TcpClient c(agent_->device().host, agent_->device().port);
  ASSERT_TRUE(
      c.send_all("GET / HTTP/1.1\r\nhost: d\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
                 "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"));
  const std::string head = read_http_head(c);
  EXPECT_EQ(head.rfind("HTTP/1.0 200 OK\r\n", 0), 0U) << head;  // the HTML page, not an upgrade
  EXPECT_TRUE(c.wait_closed(5s));
  EXPECT_NE(c.discarded().find("webrepl_content.js"), std::string::npos);
}

TEST_F(WebreplTest, SimulatorClosesOnA64BitLength) {
  TcpClient c(agent_->device().host, agent_->device().port);
  ASSERT_TRUE(c.send_all(kUpgrade));
  ASSERT_NE(read_http_head(c).find(" 101 "), std::string::npos);
  ASSERT_TRUE(read_frame(c));  // "Password: "
  ASSERT_TRUE(c.send_all(std::string("\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10)));
  EXPECT_TRUE(c.wait_closed(5s));
}

TEST_F(WebreplTest, SimulatorTakesASplitRequestAndGetVer) {
  // webrepl_cli.py sends its requests in two frames (10 + 72 bytes): the device assembles the 82 bytes across frames.
  TcpClient c(agent_->device().host, agent_->device().port);
  ASSERT_TRUE(c.send_all(kUpgrade));
  ASSERT_NE(read_http_head(c).find(" 101 "), std::string::npos);
  ASSERT_TRUE(read_frame(c));
  ASSERT_TRUE(c.send_all(frame(0x82, std::string(kPassword) + "\r")));  // binary frames count for the password too
  ASSERT_TRUE(read_frame(c));
  std::string req(82, '\0');
  req[0] = 'W';
  req[1] = 'A';
  req[2] = 3;  // GET_VER
  ASSERT_TRUE(c.send_all(frame(0x82, req.substr(0, 10)) + frame(0x82, req.substr(10, 72)) + frame(0x82, "")));
  auto ver = read_frame(c);
  ASSERT_TRUE(ver);
  EXPECT_EQ(ver->first, 0x82);
  EXPECT_EQ(ver->second.size(), 3U);
}

TEST_F(WebreplTest, SimulatorComparesThePasswordAsStrcmpDoes) {
  // modwebrepl keeps what was typed in a C string: a NUL byte ends it.
  TcpClient c(agent_->device().host, agent_->device().port);
  ASSERT_TRUE(c.send_all(kUpgrade));
  ASSERT_NE(read_http_head(c).find(" 101 "), std::string::npos);
  ASSERT_TRUE(read_frame(c));  // "Password: "
  ASSERT_TRUE(c.send_all(frame(0x81, std::string(kPassword) + std::string(1, '\0') + "junk\r")));
  auto banner = read_frame(c);
  ASSERT_TRUE(banner);
  EXPECT_EQ(banner->second, "\r\nWebREPL connected\r\n>>> ");
}

TEST_F(WebreplTest, AClientThatSendsNothingHoldsTheListener) {
  // webrepl.py reads the upgrade request on a blocking socket without a timeout: a client that connects and stays
  // silent keeps every later client waiting in the backlog, and the adapter's idle timeout says what may be going on.
  auto silent = std::make_unique<TcpClient>(agent_->device().host, agent_->device().port);
  const auto file = dir_ / "h.txt";
  otter::test::write_file(file, "held\n");
  auto req = request(file, "h.txt");
  req.idle_timeout = 500ms;
  auto held = push_in_process(req);
  ASSERT_FALSE(held);
  EXPECT_EQ(held.error().code, otter::ErrorCode::timeout) << held.error().to_string();
  EXPECT_NE(held.error().message.find("one connection at a time"), std::string::npos) << held.error().to_string();
  EXPECT_FALSE(fs::exists(root_ / "h.txt"));

  silent.reset();  // the device reads EOF in the headers, serves its HTML page, and accepts the next client:
  // the timed-out push's connection, whose request is in the backlog. That session ends on its EOF; a client
  // upgraded before would be rejected as a concurrent session, so wait for it.
  ASSERT_TRUE(agent_->process().wait_for_output(") ended", 10s, true)) << agent_->output();
  req.idle_timeout = 30s;
  auto ok = push_in_process(req);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(otter::test::read_file(root_ / "h.txt"), "held\n");
}

}  // namespace
