// The arduino-ota adapter (common/src/adapters/arduino_ota.cpp) against the ArduinoOTA simulator (otter-agent --mode
// arduino-ota), through the real CLI (`otter push --protocol arduino-ota`) and in-process (adapters::async_push),
// plus the auth arithmetic against values computed with Python's hashlib (what espota.py uses). Real processes on
// loopback; every wait is bounded; nothing sleeps.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "otter/common/adapters_asio.hpp"
#include "otter/common/arduino_ota_auth.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/files.hpp"
#include "otter/test/process.hpp"
#include "otter/test/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
using namespace std::chrono_literals;
using nlohmann::json;
using otter::ErrorCode;
using otter::test::AgentProcess;
using otter::test::Process;
using otter::test::TempDir;

constexpr const char* kPassword = "a-real-password";
constexpr std::uint64_t kMiB = 1024 * 1024;

struct CliResult {
  std::optional<int> exit;
  json out;  ///< the --json document (null if none)
  std::string log;
};

int error_code_of(const CliResult& r) {
  if (!r.out.is_object() || !r.out.contains("error")) return -1;
  return r.out["error"]["code"].get<int>();
}

std::string error_message_of(const CliResult& r) {
  if (!r.out.is_object() || !r.out.contains("error")) return {};
  return r.out["error"]["message"].get<std::string>();
}

class ArduinoOtaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.mkdir("device");
    password_file_ = (dir_ / "password").string();
    otter::test::write_file(password_file_, std::string(kPassword) + "\n");
    wrong_password_file_ = (dir_ / "wrong").string();
    otter::test::write_file(wrong_password_file_, "not-the-password\n");
  }

  void TearDown() override {
    if (agent_ && agent_->process().running()) {
      EXPECT_EQ(agent_->stop(), 0) << agent_->output();
    }
  }

  /// Starts the simulator; `auth` = "" (no password), "sha256", "md5" or "sha256-md5hash".
  void start_device(const std::string& auth) {
    std::vector<std::string> argv = {
        otter::test::agent_bin(), "--mode", "arduino-ota", "--listen", "127.0.0.1:0", "--root",
        root_.string(),           "--name", "esp32-sim"};
    if (!auth.empty()) {
      argv.insert(argv.end(), {"--password-file", password_file_, "--ota-auth", auth});
    }
    agent_ = std::make_unique<AgentProcess>(argv);
  }

  [[nodiscard]] std::string address() const { return agent_->device().address(); }

  static CliResult push(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {otter::test::otter_bin(), "push", "--protocol", "arduino-ota", "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    Process p(argv);
    CliResult r;
    r.exit = p.wait(120s);
    r.log = p.output();
    const std::string text = p.stdout_text();
    const auto brace = text.find('{');
    if (brace != std::string::npos) r.out = json::parse(text.substr(brace), nullptr, false);
    return r;
  }

  /// Runs async_push on a private io_context; `cancel` (if set) is the awaiting coroutine's cancellation signal.
  static otter::Result<otter::adapters::Outcome> push_in_process(otter::adapters::Request request,
                                                                 otter::adapters::Progress progress = {},
                                                                 asio::cancellation_signal* cancel = nullptr) {
    asio::io_context io;
    current_io_ = &io;
    std::optional<otter::Result<otter::adapters::Outcome>> result;
    auto done = [&](std::exception_ptr e, otter::Result<otter::adapters::Outcome> r) {
      if (!e) result = std::move(r);
    };
    auto op =
        otter::adapters::async_push(otter::adapters::Protocol::arduino_ota, std::move(request), std::move(progress));
    if (cancel != nullptr) {
      asio::co_spawn(io, std::move(op), asio::bind_cancellation_slot(cancel->slot(), done));
    } else {
      asio::co_spawn(io, std::move(op), done);
    }
    io.run_for(120s);
    current_io_ = nullptr;
    if (!result) return otter::make_error(ErrorCode::internal, "no result");
    return std::move(*result);
  }

  [[nodiscard]] otter::adapters::Request request(const fs::path& file) const {
    otter::adapters::Request r;
    r.host = agent_->device().host;
    r.port = agent_->device().port;
    r.path = file.string();
    r.payload = otter::adapters::Payload::firmware;
    return r;
  }

  /// Pushes `file` as firmware with the right password (if any) and checks it landed.
  void push_good(const fs::path& file, bool with_password) {
    std::vector<std::string> args = {file.string(), "--to", address()};
    if (with_password) args.insert(args.end(), {"--password-file", password_file_});
    const auto r = push(args);
    ASSERT_EQ(r.exit, 0) << r.log;
    ASSERT_EQ(otter::test::sha256_file_hex(root_ / "firmware.bin"), otter::test::sha256_file_hex(file));
  }

  static inline asio::io_context* current_io_ = nullptr;  ///< the io_context of the running push_in_process
  TempDir dir_{"otter-aota"};
  fs::path root_;
  std::string password_file_;
  std::string wrong_password_file_;
  std::unique_ptr<AgentProcess> agent_;
};

/// A UDP port on loopback that is bound and never answers (a device that ignores the invitation).
class SilentUdpPort {
 public:
  SilentUdpPort() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("SilentUdpPort: cannot bind");
    }
    port_ = ntohs(a.sin_port);
  }
  ~SilentUdpPort() { ::close(fd_); }
  SilentUdpPort(const SilentUdpPort&) = delete;
  SilentUdpPort& operator=(const SilentUdpPort&) = delete;
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// The arithmetic, against espota's (Python hashlib) values

TEST(ArduinoOtaAuth, Pbkdf2SchemeMatchesEspota) {
  // python3: ph = sha256(pw).hexdigest(); dk = pbkdf2_hmac('sha256', ph, n+':'+c, 10000).hex();
  //          sha256(dk+':'+n+':'+c).hexdigest()
  std::string n;
  std::string c;
  for (int i = 0; i < 32; ++i) n += "ab", c += "cd";
  namespace aota = otter::arduino_ota;
  EXPECT_EQ(aota::auth_response(aota::AuthScheme::pbkdf2_sha256, aota::sha256_hex(kPassword), n, c),
            "4d63ba8b1efa8949a0c5caefe7e8bc77db582e5531bdf2667c663394b4551b93");
  EXPECT_EQ(aota::auth_response(aota::AuthScheme::pbkdf2_sha256, aota::md5_hex(kPassword), n, c),
            "72411b1f2dfce35db7cbd293c3cab25f533496919e272648e90685c4b5cf79af");
}

TEST(ArduinoOtaAuth, Md5SchemeMatchesEspota) {
  // python3: md5(md5(pw).hexdigest() + ':' + n + ':' + c).hexdigest()
  std::string n;
  std::string c;
  for (int i = 0; i < 16; ++i) n += "12", c += "34";
  namespace aota = otter::arduino_ota;
  EXPECT_EQ(aota::auth_response(aota::AuthScheme::md5, aota::md5_hex(kPassword), n, c),
            "527a7698c7e86408d329d7e343f15329");
  EXPECT_EQ(aota::random_hex(64).size(), 64u);
}

// ---------------------------------------------------------------------------------------------------------------
// Through the CLI

TEST_F(ArduinoOtaTest, FirmwareImageOneMiB) {
  start_device("");
  const auto file = dir_ / "sketch.bin";
  otter::test::write_random_file(file, kMiB, 1);
  const auto r = push({file.string(), "--to", address()});
  ASSERT_EQ(r.exit, 0) << r.log;
  EXPECT_TRUE(r.out["ok"].get<bool>()) << r.log;
  EXPECT_EQ(r.out["protocol"], "arduino-ota");
  EXPECT_EQ(r.out["size"].get<std::uint64_t>(), kMiB);
  EXPECT_EQ(r.out["bytes_sent"].get<std::uint64_t>(), kMiB);
  EXPECT_TRUE(r.out["confirmed"].get<bool>());
  EXPECT_EQ(r.out["device_message"], "OK");
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "firmware.bin"), otter::test::sha256_file_hex(file));
  EXPECT_FALSE(fs::exists(root_ / "filesystem.bin"));
  EXPECT_TRUE(agent_->process().wait_for_output("rebooting", 10s, true)) << agent_->output();
}

TEST_F(ArduinoOtaTest, FilesystemImageIsCommand100) {
  start_device("");
  const auto file = dir_ / "littlefs.bin";
  otter::test::write_random_file(file, 192 * 1024 + 5, 2);
  const auto r = push({file.string(), "--to", address(), "--kind", "filesystem", "--callback", "127.0.0.1"});
  ASSERT_EQ(r.exit, 0) << r.log;
  EXPECT_TRUE(r.out["confirmed"].get<bool>());
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "filesystem.bin"), otter::test::sha256_file_hex(file));
  EXPECT_FALSE(fs::exists(root_ / "firmware.bin"));
  EXPECT_TRUE(agent_->process().wait_for_output("filesystem image", 10s, true)) << agent_->output();
}

TEST_F(ArduinoOtaTest, Pbkdf2AuthRightAndWrongPassword) {
  start_device("sha256");
  const auto good = dir_ / "good.bin";
  otter::test::write_random_file(good, 100 * 1024, 3);
  push_good(good, true);

  const auto other = dir_ / "other.bin";
  otter::test::write_random_file(other, 100 * 1024, 4);
  const auto r = push({other.string(), "--to", address(), "--password-file", wrong_password_file_});
  EXPECT_NE(r.exit, 0) << r.log;
  EXPECT_EQ(error_code_of(r), static_cast<int>(ErrorCode::auth_failed)) << r.log;
  EXPECT_NE(error_message_of(r).find("Authentication Failed"), std::string::npos) << r.log;
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "firmware.bin"), otter::test::sha256_file_hex(good));
}

TEST_F(ArduinoOtaTest, Md5AuthRightAndWrongPassword) {
  start_device("md5");
  const auto good = dir_ / "good.bin";
  otter::test::write_random_file(good, 100 * 1024, 5);
  push_good(good, true);

  const auto other = dir_ / "other.bin";
  otter::test::write_random_file(other, 100 * 1024, 6);
  const auto r = push({other.string(), "--to", address(), "--password-file", wrong_password_file_});
  EXPECT_NE(r.exit, 0) << r.log;
  EXPECT_EQ(error_code_of(r), static_cast<int>(ErrorCode::auth_failed)) << r.log;
  EXPECT_NE(error_message_of(r).find("MD5"), std::string::npos) << r.log;
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "firmware.bin"), otter::test::sha256_file_hex(good));
}

TEST_F(ArduinoOtaTest, Pbkdf2DeviceHoldingAnMd5HashAfterRetry) {
  start_device("sha256-md5hash");  // espota: SHA-256 password hash first, then MD5 on a fresh invitation
  const auto good = dir_ / "good.bin";
  otter::test::write_random_file(good, 50 * 1024, 7);
  push_good(good, true);
}

TEST_F(ArduinoOtaTest, NoPasswordGivenButDeviceHasOne) {
  start_device("sha256");
  const auto file = dir_ / "x.bin";
  otter::test::write_random_file(file, 10 * 1024, 8);
  const auto r = push({file.string(), "--to", address()});
  EXPECT_NE(r.exit, 0) << r.log;
  EXPECT_EQ(error_code_of(r), static_cast<int>(ErrorCode::auth_failed)) << r.log;
  EXPECT_NE(error_message_of(r).find("device requires a password"), std::string::npos) << r.log;
  EXPECT_FALSE(fs::exists(root_ / "firmware.bin"));
}

TEST_F(ArduinoOtaTest, DeviceAbsentIsConnectFailedWithCauses) {
  SilentUdpPort silent;
  const auto file = dir_ / "x.bin";
  otter::test::write_random_file(file, 4096, 9);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r =
      push({file.string(), "--to", "127.0.0.1:" + std::to_string(silent.port()), "--connect-timeout", "1"});
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_NE(r.exit, 0) << r.log;
  EXPECT_EQ(error_code_of(r), static_cast<int>(ErrorCode::connect_failed)) << r.log;
  const std::string m = error_message_of(r);
  EXPECT_NE(m.find("no answer"), std::string::npos) << m;
  EXPECT_NE(m.find("not running ArduinoOTA"), std::string::npos) << m;
  EXPECT_NE(m.find("firewall"), std::string::npos) << m;
  EXPECT_NE(m.find("busy"), std::string::npos) << m;
  EXPECT_LT(elapsed, 10s);
}

TEST_F(ArduinoOtaTest, NothingListeningOnTheUdpPort) {
  std::uint16_t port = 0;
  {
    SilentUdpPort gone;  // bound, then closed: the port now answers with ICMP port unreachable
    port = gone.port();
  }
  const auto file = dir_ / "x.bin";
  otter::test::write_random_file(file, 4096, 10);
  const auto r = push({file.string(), "--to", "127.0.0.1:" + std::to_string(port), "--connect-timeout", "1"});
  EXPECT_EQ(error_code_of(r), static_cast<int>(ErrorCode::connect_failed)) << r.log;
}

// ---------------------------------------------------------------------------------------------------------------
// In-process

TEST_F(ArduinoOtaTest, ProgressComesFromTheDeviceAcks) {
  start_device("");
  const auto file = dir_ / "sketch.bin";
  const std::uint64_t size = kMiB + 333;
  otter::test::write_random_file(file, size, 11);
  std::vector<std::uint64_t> seen;
  auto r = push_in_process(request(file), [&](std::uint64_t done, std::uint64_t total) {
    EXPECT_EQ(total, size);
    seen.push_back(done);
  });
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->confirmed);
  EXPECT_EQ(r->size, size);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), size);
  EXPECT_GT(seen.size(), 50u);  // one report per few device reads of <= 1460 bytes, not one at the end
  for (std::size_t i = 1; i < seen.size(); ++i) EXPECT_LE(seen[i - 1], seen[i]) << "at " << i;
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "firmware.bin"), otter::test::sha256_file_hex(file));
}

TEST_F(ArduinoOtaTest, FilePayloadIsRefused) {
  start_device("");
  const auto file = dir_ / "x.bin";
  otter::test::write_random_file(file, 100, 12);
  auto req = request(file);
  req.payload = otter::adapters::Payload::file;
  auto r = push_in_process(req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(r.error().message.find("firmware"), std::string::npos);
}

TEST_F(ArduinoOtaTest, Md5MismatchIsTheDevicesUpdateErrorAndKeepsOldImage) {
  start_device("");
  const auto good = dir_ / "good.bin";
  otter::test::write_random_file(good, 64 * 1024, 17);
  push_good(good, false);

  // The image changes on disk after its MD5 was announced: the device's Update.end() finds the mismatch.
  const auto img = dir_ / "changing.bin";
  const std::uint64_t size = kMiB;
  otter::test::write_random_file(img, size, 18);
  bool changed = false;
  auto r = push_in_process(request(img), [&](std::uint64_t done, std::uint64_t) {
    if (!changed && done >= size / 4) {  // the last bytes are not sent yet (the window is far smaller)
      changed = true;
      std::string content = otter::test::read_file(img);
      content.back() = static_cast<char>(content.back() ^ 0x5A);
      otter::test::write_file(img, content);
    }
  });
  ASSERT_TRUE(changed);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::hash_mismatch) << r.error().to_string();
  EXPECT_NE(r.error().message.find("MD5 Check Failed"), std::string::npos) << r.error().to_string();
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "firmware.bin"), otter::test::sha256_file_hex(good));
}

TEST_F(ArduinoOtaTest, DeviceKilledMidTransferKeepsOldImage) {
  start_device("");
  const auto good = dir_ / "good.bin";
  otter::test::write_random_file(good, 64 * 1024, 13);
  push_good(good, false);

  const auto big = dir_ / "big.bin";
  const std::uint64_t size = 2 * kMiB;
  otter::test::write_random_file(big, size, 14);
  bool killed = false;
  auto r = push_in_process(request(big), [&](std::uint64_t done, std::uint64_t) {
    if (!killed && done >= size / 2) {
      killed = true;
      agent_->process().kill();  // the device loses power mid-update
    }
  });
  ASSERT_TRUE(killed);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().code == ErrorCode::connection_closed || r.error().code == ErrorCode::timeout)
      << r.error().to_string();
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "firmware.bin"), otter::test::sha256_file_hex(good));
}

TEST_F(ArduinoOtaTest, CutByThePusherDeviceKeepsOldImageAndServesAgain) {
  start_device("sha256");
  const auto good = dir_ / "good.bin";
  otter::test::write_random_file(good, 64 * 1024, 15);
  push_good(good, true);

  const auto big = dir_ / "big.bin";
  const std::uint64_t size = 2 * kMiB;
  otter::test::write_random_file(big, size, 16);
  asio::cancellation_signal cancel;
  bool cut = false;
  auto req = request(big);
  req.password = kPassword;
  auto r = push_in_process(
      req,
      [&](std::uint64_t done, std::uint64_t) {
        if (!cut && done >= size / 3) {
          cut = true;
          // the pusher goes away mid-transfer (emitted from outside the adapter's own handler)
          asio::post(*current_io_, [&] { cancel.emit(asio::cancellation_type::terminal); });
        }
      },
      &cancel);
  ASSERT_TRUE(cut);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::canceled) << r.error().to_string();
  // The device saw the connection end early: Update.end() -> "Aborted", the old image stays.
  EXPECT_TRUE(agent_->process().wait_for_output("Aborted", 10s, true)) << agent_->output();
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "firmware.bin"), otter::test::sha256_file_hex(good));

  // ... and it takes the next push.
  push_good(big, true);
}

}  // namespace
