// The ESP-IDF component's example app on Linux (build/bin/otter-idf-example-host: examples/basic/main/main.c built
// from the assembled component against the host emulations) receiving pushes from the real `otter` CLI over loopback.
//
// Every device runs in its own TempDir (DATA/flash: the emulated flash; DATA/fs: LittleFS; DATA/nvs: the key) on an
// ephemeral port. Reboots are the program re-executing itself (same pid, same stdout): the test reads the next
// "emu-boot:" and "listening on" lines. A reset (power loss) is SIGKILL + starting the program again on the same
// port.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/fault_proxy.hpp"
#include "otter/test/files.hpp"
#include "otter/test/process.hpp"
#include "otter/test/tcp.hpp"
#include "otter/test/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using otter::test::AgentEndpoint;
using otter::test::Process;
using otter::test::TempDir;

namespace {

constexpr std::string_view kKey = "esp-idf-device-key-0123456789";
constexpr auto kLineTimeout = 20s;

std::string host_bin() { return otter::test::bin_path("otter-idf-example-host"); }

struct Boot {
  std::string slot;
  std::string state;
  std::string sha256;
  bool rollback = false;
};

std::optional<Boot> parse_boot(std::string_view line) {
  constexpr std::string_view kPrefix = "emu-boot: ";
  if (line.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  line.remove_prefix(kPrefix.size());
  Boot b;
  auto field = [&](std::string_view key) -> std::string {
    const auto at = line.find(key);
    if (at == std::string_view::npos) return {};
    const auto start = at + key.size();
    const auto end = line.find(' ', start);
    return std::string(line.substr(start, end == std::string_view::npos ? line.npos : end - start));
  };
  b.slot = field("slot=");
  b.state = field("state=");
  b.sha256 = field("sha256=");
  b.rollback = field("rollback=") == "1";
  if (b.slot.empty() || b.state.empty()) return std::nullopt;
  return b;
}

/// One emulated ESP32 running the example app.
class Device {
 public:
  Device(fs::path data, std::string key_file, std::vector<std::string> extra_args = {})
      : data_(std::move(data)), key_file_(std::move(key_file)), extra_(std::move(extra_args)) {
    start(0);
  }

  ~Device() {
    if (proc_) check_clean();
  }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  /// No sanitizer report in the device's log (its processes never exit normally: they are killed or re-executed).
  void check_clean() {
    const std::string err = proc_->stderr_text();
    EXPECT_EQ(err.find("runtime error"), std::string::npos) << err;
    EXPECT_EQ(err.find("Sanitizer"), std::string::npos) << err;
  }

  /// Starts the program (power-on): reads its boot and listening lines.
  void start(std::uint16_t port) {
    std::vector<std::string> argv{host_bin(),   "--port", std::to_string(port), "--data", data_.string(),
                                  "--key-file", key_file_};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    proc_ = std::make_unique<Process>(argv);
    read_boot();
  }
  /// After an emulated restart (esp_restart re-executes the program): the next boot and listening lines.
  void read_boot() {
    auto line = proc_->read_line_until([](const std::string& l) { return parse_boot(l).has_value(); }, kLineTimeout);
    if (!line) throw std::runtime_error("no emu-boot line\n" + proc_->output());
    boot_ = *parse_boot(*line);
    line = proc_->read_line_until(
        [](const std::string& l) { return otter::test::parse_listening_line(l).has_value(); }, kLineTimeout);
    if (!line) throw std::runtime_error("no listening line\n" + proc_->output());
    ep_ = *otter::test::parse_listening_line(*line);
  }
  /// Power loss and power-on: SIGKILL, then start again on the same port.
  void reset() {
    const std::uint16_t port = ep_.port;
    check_clean();
    proc_->kill();
    start(port);
  }

  [[nodiscard]] const Boot& boot() const { return boot_; }
  [[nodiscard]] const AgentEndpoint& endpoint() const { return ep_; }
  [[nodiscard]] std::uint16_t port() const { return ep_.port; }
  [[nodiscard]] std::string address() const { return ep_.address(); }
  [[nodiscard]] Process& process() { return *proc_; }
  [[nodiscard]] fs::path fs_root() const { return data_ / "fs"; }

 private:
  fs::path data_;
  std::string key_file_;
  std::vector<std::string> extra_;
  std::unique_ptr<Process> proc_;
  Boot boot_;
  AgentEndpoint ep_;
};

struct CliResult {
  int exit = -1;
  nlohmann::json json;
  std::string output;
  double seconds = 0;
};

CliResult run_otter(std::vector<std::string> args) {
  args.insert(args.begin(), otter::test::otter_bin());
  args.emplace_back("--json");
  const auto t0 = std::chrono::steady_clock::now();
  Process p(args);
  CliResult r;
  r.exit = p.wait(60s).value_or(-1);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.output = p.output();
  r.json = nlohmann::json::parse(p.stdout_text(), nullptr, /*allow_exceptions=*/false);
  return r;
}

CliResult push(const fs::path& file, const std::string& to, const std::string& key_file,
               std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"push", file.string(), "--to", to, "--key-file", key_file};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_otter(args);
}

CliResult stat(const std::string& name, const std::string& to, const std::string& key_file) {
  return run_otter({"stat", name, "--to", to, "--key-file", key_file});
}

/// A firmware image: the 0xE9 magic, then pseudo-random bytes.
std::string firmware_image(std::size_t n, std::uint64_t seed) {
  std::string img = otter::test::random_bytes(n, seed);
  img[0] = static_cast<char>(0xE9);
  return img;
}

std::vector<std::string> partial_copies(const fs::path& fs_root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs_root / ".otter" / "part", ec)) out.push_back(e.path().string());
  return out;
}

class EspIdfExample : public ::testing::Test {
 protected:
  void SetUp() override { key_file_ = otter::test::write_key_file(dir_ / "device.key", kKey); }

  std::string error_name(const CliResult& r) {
    return r.json.is_object() && r.json.contains("error") ? r.json["error"].value("name", "") : "";
  }
  std::string fw_state(Device& dev) {
    const auto r = stat("probe", dev.address(), key_file_);
    EXPECT_EQ(r.exit, 0) << r.output;
    return r.json.is_object() ? r.json.value("fw_state", "") : "";
  }

  TempDir dir_{"otter-idf"};
  std::string key_file_;
};

TEST_F(EspIdfExample, FileIsCommittedWithItsSha256AndNoTemporaryLeft) {
  Device dev(dir_ / "data", key_file_);
  EXPECT_EQ(dev.boot().slot, "ota_0");
  EXPECT_EQ(dev.boot().state, "valid");
  EXPECT_EQ(dev.endpoint().root, (dir_ / "data" / "fs").string());

  const auto src = dir_ / "blob.bin";
  otter::test::write_random_file(src, 300 * 1024, 7);
  const auto r = push(src, dev.address(), key_file_, {"--as", "assets/blob.bin"});
  ASSERT_EQ(r.exit, 0) << r.output;
  EXPECT_EQ(r.json["kind"], "file");
  EXPECT_EQ(r.json["resumed_from"], 0);
  EXPECT_EQ(otter::test::sha256_file_hex(dev.fs_root() / "assets" / "blob.bin"), otter::test::sha256_file_hex(src));
  EXPECT_TRUE(partial_copies(dev.fs_root()).empty());

  const auto s = stat("assets/blob.bin", dev.address(), key_file_);
  ASSERT_EQ(s.exit, 0) << s.output;
  EXPECT_TRUE(s.json["exists"].get<bool>());
  EXPECT_EQ(s.json["size"], 300 * 1024);
  EXPECT_EQ(s.json["sha256"], otter::test::sha256_file_hex(src));
  EXPECT_EQ(s.json["fw_state"], "valid");

  // Replacing it: the new content, still no temporary.
  otter::test::write_random_file(src, 1000, 8);
  ASSERT_EQ(push(src, dev.address(), key_file_, {"--as", "assets/blob.bin"}).exit, 0);
  EXPECT_EQ(otter::test::sha256_file_hex(dev.fs_root() / "assets" / "blob.bin"), otter::test::sha256_file_hex(src));
  EXPECT_TRUE(partial_copies(dev.fs_root()).empty());
}

TEST_F(EspIdfExample, NamesAndSizesTheDeviceCannotTakeAreRefused) {
  Device dev(dir_ / "data", key_file_);
  const auto src = dir_ / "small.txt";
  otter::test::write_file(src, "payload");
  fs::create_directories(dev.fs_root() / "adir");
  otter::test::write_file(dev.fs_root() / "afile", "x");
  EXPECT_EQ(error_name(push(src, dev.address(), key_file_, {"--as", "adir"})), "BAD_NAME");
  EXPECT_EQ(error_name(push(src, dev.address(), key_file_, {"--as", "afile/x"})), "BAD_NAME");
  EXPECT_EQ(error_name(push(src, dev.address(), key_file_, {"--as", ".otter/part/x"})), "BAD_NAME");
  EXPECT_EQ(error_name(push(src, dev.address(), key_file_, {"--as", "../escape"})), "BAD_NAME");
  EXPECT_FALSE(fs::exists(dir_ / "data" / "escape"));
  // Larger than the LittleFS partition (1.44 MiB, free space from esp_littlefs_info): refused before any data.
  const auto big = dir_ / "big.bin";
  otter::test::write_random_file(big, 2 * 1024 * 1024, 5);
  const auto r = push(big, dev.address(), key_file_);
  EXPECT_EQ(error_name(r), "NO_SPACE") << r.output;
  EXPECT_TRUE(partial_copies(dev.fs_root()).empty());
  // A firmware image larger than the OTA slot (1.25 MiB).
  const auto fw = dir_ / "huge-fw.bin";
  otter::test::write_file(fw, firmware_image(1300 * 1024, 6));
  EXPECT_EQ(error_name(push(fw, dev.address(), key_file_, {"--kind", "firmware"})), "TOO_LARGE");
  EXPECT_TRUE(dev.process().running());
}

TEST_F(EspIdfExample, CutFilePushResumesWhereItStopped) {
  Device dev(dir_ / "data", key_file_);
  const auto src = dir_ / "big.bin";
  otter::test::write_random_file(src, 300 * 1024, 11);
  {
    otter::test::FaultProxy proxy(dev.port(), otter::test::ProxyFaults::cut(150 * 1024));
    const auto r = push(src, "127.0.0.1:" + std::to_string(proxy.port()), key_file_, {"--as", "big.bin"});
    EXPECT_NE(r.exit, 0) << r.output;
    ASSERT_TRUE(proxy.wait_done(10s));
    EXPECT_TRUE(proxy.cut());
  }
  // The device has seen the cut (its session ended) before the next connection: otherwise it would answer BUSY.
  ASSERT_TRUE(dev.process().wait_for_output("CONNECTION_CLOSED", kLineTimeout, /*from_stderr=*/true))
      << dev.process().output();
  EXPECT_FALSE(fs::exists(dev.fs_root() / "big.bin"));
  EXPECT_EQ(partial_copies(dev.fs_root()).size(), 2u);  // <key>.part + <key>.meta

  const auto r = push(src, dev.address(), key_file_, {"--as", "big.bin"});
  ASSERT_EQ(r.exit, 0) << r.output;
  EXPECT_GT(r.json["resumed_from"].get<std::uint64_t>(), 0u);
  EXPECT_LT(r.json["bytes_sent"].get<std::uint64_t>(), 300u * 1024);
  EXPECT_EQ(otter::test::sha256_file_hex(dev.fs_root() / "big.bin"), otter::test::sha256_file_hex(src));
  EXPECT_TRUE(partial_copies(dev.fs_root()).empty());
}

TEST_F(EspIdfExample, UnconfirmedFirmwareBootsPendingVerifyAndRollsBackOnReset) {
  Device dev(dir_ / "data", key_file_);
  const std::string factory = dev.boot().sha256;
  otter::test::write_file(dev.fs_root() / "selftest-hold", "");  // the new image's self-test will not decide

  const auto fw = dir_ / "app-v2.bin";
  otter::test::write_file(fw, firmware_image(700 * 1024, 21));
  const auto r = push(fw, dev.address(), key_file_, {"--kind", "firmware", "--reboot"});
  ASSERT_EQ(r.exit, 0) << r.output;
  EXPECT_TRUE(r.json["rebooting"].get<bool>());

  dev.read_boot();  // the device restarted itself into the new image
  EXPECT_EQ(dev.boot().slot, "ota_1");
  EXPECT_EQ(dev.boot().state, "pending_verify");
  EXPECT_EQ(dev.boot().sha256, otter::test::sha256_file_hex(fw));
  EXPECT_EQ(fw_state(dev), "pending_verify");

  dev.reset();  // power loss before the image confirmed itself
  EXPECT_EQ(dev.boot().slot, "ota_0");
  EXPECT_TRUE(dev.boot().rollback);
  EXPECT_EQ(dev.boot().sha256, factory);
  EXPECT_EQ(fw_state(dev), "valid");
}

TEST_F(EspIdfExample, FirmwareConfirmedBySelfTestStaysAcrossReset) {
  Device dev(dir_ / "data", key_file_);
  const auto fw = dir_ / "app-v2.bin";
  otter::test::write_file(fw, firmware_image(512 * 1024, 22));
  const auto r = push(fw, dev.address(), key_file_, {"--kind", "firmware", "--reboot"});
  ASSERT_EQ(r.exit, 0) << r.output;

  dev.read_boot();
  EXPECT_EQ(dev.boot().state, "pending_verify");
  ASSERT_TRUE(dev.process().wait_for_output("firmware confirmed", kLineTimeout, /*from_stderr=*/true))
      << dev.process().output();
  EXPECT_EQ(fw_state(dev), "valid");

  dev.reset();
  EXPECT_EQ(dev.boot().slot, "ota_1");
  EXPECT_EQ(dev.boot().state, "valid");
  EXPECT_FALSE(dev.boot().rollback);
  EXPECT_EQ(dev.boot().sha256, otter::test::sha256_file_hex(fw));
}

TEST_F(EspIdfExample, AutoConfirmAfterUptimeKeepsTheImage) {
  Device dev(dir_ / "data", key_file_, {"--auto-confirm", "1"});
  otter::test::write_file(dev.fs_root() / "selftest-hold", "");  // the app's self-test never decides
  const auto fw = dir_ / "app-v2.bin";
  otter::test::write_file(fw, firmware_image(128 * 1024, 28));
  ASSERT_EQ(push(fw, dev.address(), key_file_, {"--kind", "firmware", "--reboot"}).exit, 0);

  dev.read_boot();
  EXPECT_EQ(dev.boot().state, "pending_verify");
  ASSERT_TRUE(dev.process().wait_for_output("firmware confirmed", kLineTimeout, /*from_stderr=*/true))
      << dev.process().output();
  EXPECT_NE(dev.process().stderr_text().find("auto-confirm"), std::string::npos);
  EXPECT_EQ(fw_state(dev), "valid");
  dev.reset();
  EXPECT_EQ(dev.boot().slot, "ota_1");
  EXPECT_EQ(dev.boot().state, "valid");
}

TEST_F(EspIdfExample, FailedSelfTestRollsBackAtOnce) {
  Device dev(dir_ / "data", key_file_);
  const std::string factory = dev.boot().sha256;
  otter::test::write_file(dev.fs_root() / "selftest-fail", "");
  const auto fw = dir_ / "app-bad.bin";
  otter::test::write_file(fw, firmware_image(256 * 1024, 23));
  ASSERT_EQ(push(fw, dev.address(), key_file_, {"--kind", "firmware", "--reboot"}).exit, 0);

  dev.read_boot();
  EXPECT_EQ(dev.boot().state, "pending_verify");
  dev.read_boot();  // the self-test failed: otter_ota_rollback() restarted into the previous image
  EXPECT_EQ(dev.boot().slot, "ota_0");
  EXPECT_EQ(dev.boot().sha256, factory);
  EXPECT_EQ(fw_state(dev), "valid");
}

TEST_F(EspIdfExample, FirmwareCorruptedInFlightNeverBecomesBootable) {
  Device dev(dir_ / "data", key_file_);
  const std::string factory = dev.boot().sha256;
  const auto fw = dir_ / "app-v2.bin";
  otter::test::write_file(fw, firmware_image(400 * 1024, 24));
  {
    otter::test::FaultProxy proxy(dev.port(), otter::test::ProxyFaults::corrupt(200 * 1024 + 17));
    const auto r =
        push(fw, "127.0.0.1:" + std::to_string(proxy.port()), key_file_, {"--kind", "firmware", "--reboot"});
    EXPECT_TRUE(proxy.corrupted());
    EXPECT_NE(r.exit, 0) << r.output;
    EXPECT_EQ(error_name(r), "HASH_MISMATCH") << r.output;
  }
  EXPECT_EQ(fw_state(dev), "valid");  // still the same process: no reboot happened
  dev.reset();
  EXPECT_EQ(dev.boot().slot, "ota_0");
  EXPECT_EQ(dev.boot().sha256, factory);
  EXPECT_FALSE(dev.boot().rollback);
}

TEST_F(EspIdfExample, ImageWithoutMagicIsRefused) {
  Device dev(dir_ / "data", key_file_);
  const std::string factory = dev.boot().sha256;
  const auto fw = dir_ / "not-an-image.bin";
  std::string img = otter::test::random_bytes(64 * 1024, 25);
  img[0] = 0x7F;
  otter::test::write_file(fw, img);
  const auto r = push(fw, dev.address(), key_file_, {"--kind", "firmware", "--reboot"});
  EXPECT_NE(r.exit, 0) << r.output;
  EXPECT_EQ(error_name(r), "STORAGE") << r.output;
  EXPECT_NE(r.json["error"].value("message", "").find("0xE9"), std::string::npos) << r.output;
  dev.reset();
  EXPECT_EQ(dev.boot().slot, "ota_0");
  EXPECT_EQ(dev.boot().sha256, factory);
}

TEST_F(EspIdfExample, FirmwareCutMidwayKeepsTheOldImageAndRestartsFromZero) {
  Device dev(dir_ / "data", key_file_);
  const std::string factory = dev.boot().sha256;
  const auto fw = dir_ / "app-v2.bin";
  otter::test::write_file(fw, firmware_image(600 * 1024, 26));
  {
    otter::test::FaultProxy proxy(dev.port(), otter::test::ProxyFaults::cut(300 * 1024));
    const auto r =
        push(fw, "127.0.0.1:" + std::to_string(proxy.port()), key_file_, {"--kind", "firmware", "--reboot"});
    EXPECT_NE(r.exit, 0) << r.output;
    ASSERT_TRUE(proxy.wait_done(10s));
    EXPECT_TRUE(proxy.cut());
  }
  ASSERT_TRUE(dev.process().wait_for_output("CONNECTION_CLOSED", kLineTimeout, /*from_stderr=*/true))
      << dev.process().output();
  dev.reset();
  EXPECT_EQ(dev.boot().slot, "ota_0");
  EXPECT_EQ(dev.boot().sha256, factory);

  // No resume for firmware: the next push sends the whole image, and then it boots.
  const auto r = push(fw, dev.address(), key_file_, {"--kind", "firmware", "--reboot"});
  ASSERT_EQ(r.exit, 0) << r.output;
  EXPECT_EQ(r.json["resumed_from"], 0);
  dev.read_boot();
  EXPECT_EQ(dev.boot().slot, "ota_1");
  EXPECT_EQ(dev.boot().sha256, otter::test::sha256_file_hex(fw));
}

TEST_F(EspIdfExample, WrongKeyIsRefused) {
  Device dev(dir_ / "data", key_file_);
  const auto other = otter::test::write_key_file(dir_ / "other.key", "not-the-device-key-9876543210");
  const auto src = dir_ / "f.txt";
  otter::test::write_file(src, "hello");
  const auto r = push(src, dev.address(), other);
  EXPECT_NE(r.exit, 0) << r.output;
  EXPECT_EQ(error_name(r), "AUTH_FAILED") << r.output;
  EXPECT_FALSE(fs::exists(dev.fs_root() / "f.txt"));
  const auto fw = dir_ / "fw.bin";
  otter::test::write_file(fw, firmware_image(8192, 27));
  EXPECT_EQ(error_name(push(fw, dev.address(), other, {"--kind", "firmware", "--reboot"})), "AUTH_FAILED");
  EXPECT_TRUE(dev.process().running());
}

TEST_F(EspIdfExample, SecondConnectionIsAnsweredBusy) {
  Device dev(dir_ / "data", key_file_);
  otter::test::TcpClient first("127.0.0.1", dev.port());
  const auto hello = first.read_frame(5s);
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->type, 0x01);

  otter::test::TcpClient second("127.0.0.1", dev.port());
  const auto err = second.read_frame(5s);
  ASSERT_TRUE(err) << dev.process().output();
  EXPECT_EQ(err->type, 0x7F);
  ASSERT_GE(err->payload.size(), 2u);
  EXPECT_EQ((static_cast<unsigned>(static_cast<unsigned char>(err->payload[0])) << 8) |
                static_cast<unsigned char>(err->payload[1]),
            7u);  // BUSY
  EXPECT_TRUE(second.wait_closed(5s));

  // The first session is unaffected and the device serves the next one.
  first.close();
  ASSERT_TRUE(dev.process().wait_for_output("CONNECTION_CLOSED", kLineTimeout, /*from_stderr=*/true));
  EXPECT_EQ(fw_state(dev), "valid");
}

// Not a check: the figures for the README (push of 1 MiB over loopback to the emulated device, CLI start included).
TEST_F(EspIdfExample, FiguresOneMiB) {
  Device dev(dir_ / "data", key_file_, {"--log-level", "debug"});
  const auto file = dir_ / "one.bin";
  otter::test::write_random_file(file, 1024 * 1024, 31);
  const auto f = push(file, dev.address(), key_file_);
  ASSERT_EQ(f.exit, 0) << f.output;
  const auto fw = dir_ / "fw.bin";
  otter::test::write_file(fw, firmware_image(1024 * 1024, 32));
  const auto w = push(fw, dev.address(), key_file_, {"--kind", "firmware"});
  ASSERT_EQ(w.exit, 0) << w.output;
  std::printf("[figures] 1 MiB file: %.3f s (device-side %.3f s); 1 MiB firmware: %.3f s (device-side %.3f s)\n",
              f.seconds, f.json.value("seconds", 0.0), w.seconds, w.json.value("seconds", 0.0));
  const std::string err = dev.process().stderr_text();
  auto after = [&](std::string_view what) {
    const auto at = err.find(what);
    return at == std::string::npos ? std::string("?") : err.substr(at, err.find('\n', at) - at);
  };
  std::printf("[figures] %s\n[figures] %s\n", after("memory:").c_str(), after("session over;").c_str());
  RecordProperty("file_1MiB_ms", static_cast<int>(f.seconds * 1000));
  RecordProperty("firmware_1MiB_ms", static_cast<int>(w.seconds * 1000));
}

}  // namespace
