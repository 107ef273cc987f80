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

#include "adapter_fixture.hpp"
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
using otter::test::CliResult;
using otter::test::error_code_of;
using otter::test::error_message_of;
using otter::test::Process;
using otter::test::TempDir;
using otter::test::write_firmware_image;

constexpr const char* kPassword = "a-real-password";
constexpr std::uint64_t kMiB = 1024 * 1024;

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
    std::vector<std::string> extra;
    if (!auth.empty()) extra = {"--password-file", password_file_, "--ota-auth", auth};
    agent_ = std::make_unique<AgentProcess>(otter::test::simulator_argv("arduino-ota", root_, "esp32-sim", extra));
  }

  [[nodiscard]] std::string address() const { return agent_->device().address(); }

  static CliResult push(const std::vector<std::string>& args) { return otter::test::push_cli("arduino-ota", args); }

  static otter::Result<otter::adapters::Outcome> push_in_process(otter::adapters::Request request,
                                                                 otter::adapters::Progress progress = {},
                                                                 asio::cancellation_signal* cancel = nullptr) {
    return otter::test::push_in_process(otter::adapters::Protocol::arduino_ota, std::move(request),
                                        std::move(progress), cancel, &current_io_);
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

  /// Pushes `file` (a firmware image) with a wrong password and checks AUTH_FAILED, `words` in the message, and the
  /// old image `kept`.
  void push_wrong_password(const fs::path& file, const std::string& words, const fs::path& kept) {
    const auto r = push({file.string(), "--to", address(), "--password-file", wrong_password_file_});
    EXPECT_NE(r.exit, 0) << r.log;
    EXPECT_EQ(error_code_of(r), static_cast<int>(ErrorCode::auth_failed)) << r.log;
    EXPECT_NE(error_message_of(r).find(words), std::string::npos) << r.log;
    EXPECT_EQ(otter::test::sha256_file_hex(root_ / "firmware.bin"), otter::test::sha256_file_hex(kept));
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
  write_firmware_image(file, kMiB, 1);
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
  std::string image = otter::test::random_bytes(192 * 1024 + 5, 2);
  image[0] = 0x00;  // Update checks no magic byte for a filesystem image (U_SPIFFS)
  otter::test::write_file(file, image);
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
  write_firmware_image(good, 100 * 1024, 3);
  push_good(good, true);
  const auto other = dir_ / "other.bin";
  write_firmware_image(other, 100 * 1024, 4);
  push_wrong_password(other, "Authentication Failed", good);
}

TEST_F(ArduinoOtaTest, Md5AuthRightAndWrongPassword) {
  start_device("md5");
  const auto good = dir_ / "good.bin";
  write_firmware_image(good, 100 * 1024, 5);
  push_good(good, true);
  const auto other = dir_ / "other.bin";
  write_firmware_image(other, 100 * 1024, 6);
  push_wrong_password(other, "MD5", good);
}

TEST_F(ArduinoOtaTest, Pbkdf2DeviceHoldingAnMd5HashAfterRetry) {
  start_device("sha256-md5hash");  // espota: SHA-256 password hash first, then MD5 on a fresh invitation
  const auto good = dir_ / "good.bin";
  write_firmware_image(good, 50 * 1024, 7);
  push_good(good, true);
}

TEST_F(ArduinoOtaTest, NoPasswordGivenButDeviceHasOne) {
  start_device("sha256");
  const auto file = dir_ / "x.bin";
  write_firmware_image(file, 10 * 1024, 8);
  const auto r = push({file.string(), "--to", address()});
  EXPECT_NE(r.exit, 0) << r.log;
  EXPECT_EQ(error_code_of(r), static_cast<int>(ErrorCode::auth_failed)) << r.log;
  EXPECT_NE(error_message_of(r).find("device requires a password"), std::string::npos) << r.log;
  EXPECT_FALSE(fs::exists(root_ / "firmware.bin"));
}

TEST_F(ArduinoOtaTest, DeviceAbsentIsConnectFailedWithCauses) {
  SilentUdpPort silent;
  const auto file = dir_ / "x.bin";
  write_firmware_image(file, 4096, 9);
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
  write_firmware_image(file, 4096, 10);
  const auto r = push({file.string(), "--to", "127.0.0.1:" + std::to_string(port), "--connect-timeout", "1"});
  EXPECT_EQ(error_code_of(r), static_cast<int>(ErrorCode::connect_failed)) << r.log;
}

// ---------------------------------------------------------------------------------------------------------------
// In-process

TEST_F(ArduinoOtaTest, ProgressComesFromTheDeviceAcks) {
  start_device("");
  const auto file = dir_ / "sketch.bin";
  const std::uint64_t size = kMiB + 333;
  write_firmware_image(file, size, 11);
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
  // Reports follow the device's acks (several may arrive in one read on a busy machine), not one at the end.
  EXPECT_GT(seen.size(), 10u);
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
  write_firmware_image(good, 64 * 1024, 17);
  push_good(good, false);

  // The image changes on disk after its MD5 was announced: the device's Update.end() finds the mismatch.
  const auto img = dir_ / "changing.bin";
  const std::uint64_t size = kMiB;
  write_firmware_image(img, size, 18);
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
  write_firmware_image(good, 64 * 1024, 13);
  push_good(good, false);

  const auto big = dir_ / "big.bin";
  const std::uint64_t size = 2 * kMiB;
  write_firmware_image(big, size, 14);
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
  write_firmware_image(good, 64 * 1024, 15);
  push_good(good, true);

  const auto big = dir_ / "big.bin";
  const std::uint64_t size = 2 * kMiB;
  write_firmware_image(big, size, 16);
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

// ---------------------------------------------------------------------------------------------------------------
// Firmware images without ESP_IMAGE_HEADER_MAGIC (0xE9)

/// `n` pseudo-random bytes starting with 0x7f "ELF" (the sketch's .elf instead of its .bin).
void write_elf_like(const fs::path& path, std::size_t n, std::uint64_t seed) {
  std::string content = otter::test::random_bytes(n, seed);
  content.replace(0, 4,
                  "\x7f"
                  "ELF");
  otter::test::write_file(path, content);
}

TEST_F(ArduinoOtaTest, NonImageFirmwareIsRefusedBeforeInviting) {
  start_device("");
  const auto good = dir_ / "good.bin";
  write_firmware_image(good, 64 * 1024, 21);
  push_good(good, false);

  const auto elf = dir_ / "sketch.elf";
  write_elf_like(elf, 64 * 1024, 22);
  const auto r = push({elf.string(), "--to", address()});
  EXPECT_EQ(r.exit, 1) << r.log;
  EXPECT_EQ(error_code_of(r), static_cast<int>(ErrorCode::unsupported_kind)) << r.log;
  const std::string m = error_message_of(r);
  EXPECT_NE(m.find("not an ESP32 application image"), std::string::npos) << m;
  EXPECT_NE(m.find("0x7f"), std::string::npos) << m;
  EXPECT_NE(m.find("--force"), std::string::npos) << m;
  // Nothing reached the device: one invitation (the good push) in its log, and the old image.
  const std::string log = agent_->output();
  EXPECT_EQ(log.find("invitation from"), log.rfind("invitation from")) << log;
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "firmware.bin"), otter::test::sha256_file_hex(good));

  // A filesystem image may start with anything.
  const auto r2 = push({elf.string(), "--to", address(), "--kind", "filesystem"});
  EXPECT_EQ(r2.exit, 0) << r2.log;
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "filesystem.bin"), otter::test::sha256_file_hex(elf));
}

TEST_F(ArduinoOtaTest, ForcedNonImageIsRefusedByTheDeviceWhichKeepsItsImage) {
  start_device("sha256");
  const auto good = dir_ / "good.bin";
  write_firmware_image(good, 64 * 1024, 23);
  push_good(good, true);

  // Shorter than Update's 4 KiB sector: the check runs when the whole image is in.
  const auto small = dir_ / "small.elf";
  write_elf_like(small, 1000, 24);
  const auto r = push({small.string(), "--to", address(), "--password-file", password_file_, "--force"});
  EXPECT_EQ(r.exit, 1) << r.log;
  EXPECT_EQ(error_code_of(r), static_cast<int>(ErrorCode::unsupported_kind)) << r.log;
  EXPECT_NE(error_message_of(r).find("'Decryption error'"), std::string::npos) << r.log;
  EXPECT_NE(error_message_of(r).find("not an ESP32 application image"), std::string::npos) << r.log;
  EXPECT_TRUE(agent_->process().wait_for_output("Update ERROR: Decryption error", 10s, true)) << agent_->output();
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "firmware.bin"), otter::test::sha256_file_hex(good));

  // Larger: the device acknowledges the reads that fill its first sector, then refuses at the flush, while the
  // pusher's window is still in flight; it keeps its image and takes the next push.
  const auto big = dir_ / "big.elf";
  write_elf_like(big, 512 * 1024, 25);
  auto req = request(big);
  req.password = kPassword;
  req.force = true;
  std::uint64_t acked = 0;
  auto res = push_in_process(req, [&](std::uint64_t done, std::uint64_t) { acked = done; });
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, ErrorCode::unsupported_kind) << res.error().to_string();
  // The device closes with the pusher's data unread: a reset, which may take its words along (as on lwIP).
  EXPECT_TRUE(res.error().message.find("'Decryption error'") != std::string::npos ||
              res.error().message.find("does not start with 0xE9") != std::string::npos)
      << res.error().to_string();
  EXPECT_TRUE(agent_->process().wait_for_output("Update ERROR: Decryption error", 10s, true)) << agent_->output();
  EXPECT_LE(acked, 4096u);
  EXPECT_EQ(otter::test::sha256_file_hex(root_ / "firmware.bin"), otter::test::sha256_file_hex(good));
  const auto next = dir_ / "next.bin";
  write_firmware_image(next, 200 * 1024, 26);
  push_good(next, true);
}

}  // namespace
