// End to end: the OtterOTA Arduino library's examples, compiled unchanged against the host emulations
// (build/bin/basicota-host, confirmafterselftest-host), receive pushes from the real `otter` CLI over loopback.
// Every test has its own data directory (emulated flash + LittleFS) and an ephemeral port. Nothing sleeps: the
// tests wait for the lines the emulated device prints ("emu-boot: ...", the listening line, Serial on stderr).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cli_test_util.hpp"
#include "otter/core/codec.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/fault_proxy.hpp"
#include "otter/test/files.hpp"
#include "otter/test/process.hpp"
#include "otter/test/tcp.hpp"
#include "otter/test/temp_dir.hpp"

namespace otter::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kKey = "arduino-host-test-key-0123456789";
constexpr auto kWait = 30s;

/// "emu-boot: slot=ota_1 state=pending_verify sha256=<hex> rollback=0"
struct Boot {
  std::string slot;
  std::string state;
  std::string sha256;
  bool rollback = false;
};

std::optional<Boot> parse_boot(const std::string& line) {
  if (line.rfind("emu-boot: ", 0) != 0) return std::nullopt;
  auto field = [&](const std::string& k) -> std::string {
    const auto p = line.find(" " + k + "=");
    if (p == std::string::npos) return {};
    const auto start = p + k.size() + 2;
    const auto end = line.find(' ', start);
    return line.substr(start, end == std::string::npos ? std::string::npos : end - start);
  };
  Boot b;
  b.slot = field("slot");
  b.state = field("state");
  b.sha256 = field("sha256");
  b.rollback = field("rollback") == "1";
  return b;
}

/// One emulated device: a host program on a data directory. Restarts (ESP.restart) re-execute the same process.
class Device {
 public:
  Device(const std::string& program, const fs::path& data, const std::string& key_file,
         const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{bin_path(program), "--port", "0", "--data", data.string(), "--key-file", key_file};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc_ = std::make_unique<Process>(argv);
    wait_boot();
  }

  /// Reads the next emu-boot line and the listening line after it (the device booted and runs setup()).
  void wait_boot() {
    const auto bl = proc_->read_line_until([](const std::string& l) { return parse_boot(l).has_value(); }, kWait);
    if (!bl) throw std::runtime_error("no emu-boot line\n" + proc_->output());
    boot_ = *parse_boot(*bl);
    const auto ll =
        proc_->read_line_until([](const std::string& l) { return parse_listening_line(l).has_value(); }, kWait);
    if (!ll) throw std::runtime_error("no listening line\n" + proc_->output());
    ep_ = *parse_listening_line(*ll);
  }

  void kill() { proc_->kill(); }  // a reset: power lost, nothing flushed

  [[nodiscard]] const Boot& boot() const { return boot_; }
  [[nodiscard]] const AgentEndpoint& endpoint() const { return ep_; }
  [[nodiscard]] std::string address() const { return ep_.address(); }
  Process& process() { return *proc_; }

 private:
  std::unique_ptr<Process> proc_;
  Boot boot_;
  AgentEndpoint ep_;
};

class ArduinoHost : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = write_key_file(dir_ / "key", kKey);
    data_ = dir_ / "data";
    fs::create_directories(dir_ / "src");
  }

  Device& start(const std::string& program = "basicota-host", const std::vector<std::string>& extra = {}) {
    dev_ = std::make_unique<Device>(program, data_, key_, extra);
    if (factory_sha_.empty()) factory_sha_ = dev_->boot().sha256;
    return *dev_;
  }
  /// A reset: kill the process and power on again from the same data directory.
  Device& reset(const std::string& program = "basicota-host") {
    dev_->kill();
    return start(program);
  }

  OtterRun push(const fs::path& file, std::vector<std::string> args, const std::string& to = "",
                const std::string& key = "") {
    std::vector<std::string> argv = {"push",       file.string(),           "--to", to.empty() ? dev_->address() : to,
                                     "--key-file", key.empty() ? key_ : key};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--json");
    return run_otter(argv);
  }
  OtterRun stat(const std::string& name) {
    return run_otter({"stat", name, "--to", dev_->address(), "--key-file", key_, "--json"});
  }
  std::string fw_state() {
    const auto r = stat("probe");
    EXPECT_EQ(r.exit_code, 0) << r.describe;
    return r.json().value("fw_state", std::string("<missing>"));
  }

  fs::path source(const std::string& rel, std::uint64_t size, std::uint64_t seed) {
    const fs::path p = dir_ / "src" / rel;
    write_random_file(p, size, seed);
    return p;
  }
  /// An app image: the ESP32 image magic 0xE9, then pseudo-random bytes.
  fs::path image(const std::string& rel, std::size_t size, std::uint64_t seed, char first = '\xE9') {
    std::string bytes = random_bytes(size, seed);
    bytes[0] = first;
    const fs::path p = dir_ / "src" / rel;
    write_file(p, bytes);
    return p;
  }

  /// LittleFS content, without the (empty) partial-copy directory.
  std::vector<std::string> littlefs() const {
    auto t = list_tree(data_ / "littlefs");
    std::erase_if(t, [](const std::string& e) { return e == ".otter/" || e == ".otter/part/"; });
    return t;
  }

  TempDir dir_{"otter-arduino"};
  std::string key_;
  fs::path data_;
  std::unique_ptr<Device> dev_;
  std::string factory_sha_;
};

// --- files ------------------------------------------------------------------------------------------------------

TEST_F(ArduinoHost, FilePushLandsInLittleFs) {
  start();
  const fs::path src = source("blob.bin", 300 * 1024, 1);
  const auto r = push(src, {"--as", "dir/blob.bin"});
  ASSERT_EQ(r.exit_code, 0) << r.describe << dev_->process().output();
  const auto j = r.json();
  EXPECT_EQ(j["sha256"], sha256_file_hex(src));
  EXPECT_EQ(j.value("fw_state", ""), "valid");
  EXPECT_EQ(sha256_file_hex(data_ / "littlefs" / "dir" / "blob.bin"), sha256_file_hex(src));
  EXPECT_EQ(littlefs(), (std::vector<std::string>{"dir/", "dir/blob.bin"}));  // no partial copy, no temp file

  const auto s = stat("dir/blob.bin");
  ASSERT_EQ(s.exit_code, 0) << s.describe;
  EXPECT_EQ(s.json().value("exists", false), true);
  EXPECT_EQ(s.json()["sha256"], sha256_file_hex(src));

  // Replacing an existing file (LittleFS rename over it).
  const fs::path v2 = source("blob2.bin", 1000, 2);
  const auto r2 = push(v2, {"--as", "dir/blob.bin"});
  ASSERT_EQ(r2.exit_code, 0) << r2.describe;
  EXPECT_EQ(sha256_file_hex(data_ / "littlefs" / "dir" / "blob.bin"), sha256_file_hex(v2));
  EXPECT_EQ(littlefs(), (std::vector<std::string>{"dir/", "dir/blob.bin"}));
}

TEST_F(ArduinoHost, FileResumesAfterACut) {
  start();
  constexpr std::uint64_t kSize = 800 * 1024;
  constexpr std::uint64_t kCut = 300 * 1024;
  const fs::path src = source("big.bin", kSize, 3);
  std::uint64_t through = 0;
  {
    FaultProxy proxy(dev_->endpoint().port, ProxyFaults::cut(kCut));
    const auto first = push(src, {}, "127.0.0.1:" + std::to_string(proxy.port()));
    ASSERT_TRUE(proxy.wait_done(kWait));
    EXPECT_TRUE(proxy.cut());
    through = proxy.data_forwarded();
    EXPECT_EQ(first.exit_code, 1) << first.describe;
    EXPECT_EQ(first.json()["error"].value("name", ""), "CONNECTION_CLOSED") << first.describe;
  }
  // The sketch's onError reports the end of the session: the partial copy is flushed and closed by then.
  ASSERT_TRUE(dev_->process().wait_for_output("otter: error 101", kWait, /*from_stderr=*/true))
      << dev_->process().output();
  EXPECT_FALSE(fs::exists(data_ / "littlefs" / "big.bin"));

  const auto second = push(src, {});
  ASSERT_EQ(second.exit_code, 0) << second.describe << dev_->process().output();
  const auto j = second.json();
  // The device keeps what it had read when the link broke. The proxy's cut resets the connection, which drops what
  // the device's socket still held unread: so at most what the proxy forwarded (otter-agent, which reads eagerly,
  // usually gets all of it; the sketch reads at loop() pace).
  const std::uint64_t resumed = j.value("resumed_from", std::uint64_t{0});
  EXPECT_GT(resumed, 0u) << second.describe;
  EXPECT_LE(resumed, through) << second.describe;
  EXPECT_EQ(j.value("bytes_sent", std::uint64_t{0}), kSize - resumed);
  EXPECT_EQ(sha256_file_hex(data_ / "littlefs" / "big.bin"), sha256_file_hex(src));
  EXPECT_EQ(littlefs(), (std::vector<std::string>{"big.bin"}));
}

TEST_F(ArduinoHost, FileLargerThanTheFileSystemIsNoSpace) {
  start();
  const fs::path src = source("huge.bin", 2 * 1024 * 1024, 4);  // LittleFS is 0x160000 bytes
  const auto r = push(src, {});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 3, "NO_SPACE");
  EXPECT_EQ(littlefs(), std::vector<std::string>{});
}

// --- refusals ---------------------------------------------------------------------------------------------------

TEST_F(ArduinoHost, WrongKeyIsAuthFailed) {
  start();
  const std::string other = write_key_file(dir_ / "other.key", "not-the-device-key-0123456789");
  const fs::path src = source("a.txt", 100, 5);
  const auto r = push(src, {}, "", other);
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 4, "AUTH_FAILED");
  EXPECT_EQ(littlefs(), std::vector<std::string>{});
}

TEST_F(ArduinoHost, BadNamesAreRefused) {
  start();
  const fs::path src = source("a.txt", 100, 6);
  for (const std::string name : {"../escape.txt", ".otter/part/x", "/abs.txt"}) {
    const auto r = push(src, {"--as", name});
    EXPECT_EQ(r.exit_code, 1) << r.describe;
    expect_json_error(r, 1, "BAD_NAME");
  }
  // Valid for the protocol, too long for LittleFS (a component over 63 bytes): refused by the storage port.
  const auto r = push(src, {"--as", std::string(70, 'n') + ".txt"});
  expect_json_error(r, 1, "BAD_NAME");
  EXPECT_NE(r.out.find("LittleFS"), std::string::npos) << r.describe;
  // A file where a directory is needed.
  ASSERT_EQ(push(src, {"--as", "plain"}).exit_code, 0);
  const auto under = push(src, {"--as", "plain/child.txt"});
  expect_json_error(under, 1, "BAD_NAME");
  EXPECT_EQ(littlefs(), std::vector<std::string>{"plain"});
}

TEST_F(ArduinoHost, SecondClientIsAnsweredBusy) {
  start();
  TcpClient first(dev_->endpoint().host, dev_->endpoint().port);
  const auto hello = first.read_frame(kWait);
  ASSERT_TRUE(hello.has_value());
  EXPECT_EQ(hello->type, static_cast<std::uint8_t>(core::FrameType::hello));
  const auto decoded = core::decode_hello(
      core::ByteView(reinterpret_cast<const std::uint8_t*>(hello->payload.data()), hello->payload.size()));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->caps, core::caps::file | core::caps::firmware | core::caps::resume | core::caps::stat |
                               core::caps::reboot | core::caps::digest_last);
  EXPECT_EQ(decoded->fw_state, core::FwState::valid);

  TcpClient second(dev_->endpoint().host, dev_->endpoint().port);
  const auto busy = second.read_frame(kWait);
  ASSERT_TRUE(busy.has_value());
  EXPECT_EQ(busy->type, static_cast<std::uint8_t>(core::FrameType::error));
  const auto e = core::decode_error(
      core::ByteView(reinterpret_cast<const std::uint8_t*>(busy->payload.data()), busy->payload.size()));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, ErrorCode::busy);
  EXPECT_TRUE(second.wait_closed(kWait));
  first.close();

  // The device serves the next pusher.
  const fs::path src = source("after.txt", 10, 7);
  const auto r = push(src, {});
  EXPECT_EQ(r.exit_code, 0) << r.describe << dev_->process().output();
}

TEST_F(ArduinoHost, SilentSessionGivesWayToANewPusher) {
  start();
  // A pusher that connected and went silent (its network vanished without closing the connection).
  TcpClient stale(dev_->endpoint().host, dev_->endpoint().port);
  ASSERT_TRUE(stale.read_frame(kWait).has_value());
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path src = source("next.txt", 1000, 16);
  OtterRun r = push(src, {});
  // Within the first 5 s the device answers BUSY; after that the new pusher takes over.
  while (r.exit_code != 0 && std::chrono::steady_clock::now() - t0 < kWait) {
    expect_json_error(r, 7, "BUSY");
    std::this_thread::sleep_for(500ms);  // poll interval: the loop re-checks the device's answer
    r = push(src, {});
  }
  ASSERT_EQ(r.exit_code, 0) << r.describe << dev_->process().output();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(sha256_file_hex(data_ / "littlefs" / "next.txt"), sha256_file_hex(src));
  EXPECT_TRUE(stale.wait_closed(kWait));  // the stale session was closed
}

TEST_F(ArduinoHost, MdnsAdvertisesTheService) {
  start();
  const std::string mdns = read_file(data_ / "mdns.txt");
  const std::string id = dev_->endpoint().id;
  EXPECT_EQ(id.rfind("esp32-", 0), 0u) << id;
  EXPECT_NE(mdns.find("hostname " + id + "\n"), std::string::npos) << mdns;
  EXPECT_NE(mdns.find("service _otter._tcp port " + std::to_string(dev_->endpoint().port) + "\n"), std::string::npos)
      << mdns;
  EXPECT_NE(mdns.find("txt _otter._tcp id=" + id + "\n"), std::string::npos) << mdns;
  EXPECT_NE(mdns.find("txt _otter._tcp proto=1\n"), std::string::npos) << mdns;
  EXPECT_NE(mdns.find("txt _otter._tcp fw=valid\n"), std::string::npos) << mdns;
}

// --- firmware ---------------------------------------------------------------------------------------------------

TEST_F(ArduinoHost, FirmwareBootsPendingVerifyAndRollsBackOnReset) {
  start();
  EXPECT_EQ(dev_->boot().slot, "ota_0");
  EXPECT_EQ(dev_->boot().state, "valid");
  const std::uint16_t port = dev_->endpoint().port;
  const fs::path img = image("fw.bin", 300 * 1024, 8);

  const auto r = push(img, {"--kind", "firmware", "--reboot"});
  ASSERT_EQ(r.exit_code, 0) << r.describe << dev_->process().output();
  EXPECT_EQ(r.json().value("rebooting", false), true);
  EXPECT_EQ(littlefs(), std::vector<std::string>{});  // firmware does not touch the file system

  // ESP.restart(): the same process re-executes, boots the new slot unconfirmed, on the same port.
  dev_->wait_boot();
  EXPECT_EQ(dev_->boot().slot, "ota_1");
  EXPECT_EQ(dev_->boot().state, "pending_verify");
  EXPECT_EQ(dev_->boot().sha256, sha256_file_hex(img));
  EXPECT_FALSE(dev_->boot().rollback);
  EXPECT_EQ(dev_->endpoint().port, port);
  EXPECT_EQ(fw_state(), "pending_verify");
  EXPECT_NE(read_file(data_ / "mdns.txt").find("fw=pending_verify"), std::string::npos);

  // A reset before the sketch confirmed: the bootloader rolls back to the old image.
  reset();
  EXPECT_EQ(dev_->boot().slot, "ota_0");
  EXPECT_EQ(dev_->boot().state, "valid");
  EXPECT_EQ(dev_->boot().sha256, factory_sha_);
  EXPECT_TRUE(dev_->boot().rollback);
  EXPECT_EQ(fw_state(), "valid");
}

TEST_F(ArduinoHost, ConfirmedImageStaysAcrossAReset) {
  start("confirmafterselftest-host");
  const fs::path img = image("fw.bin", 200 * 1024, 9);
  const auto r = push(img, {"--kind", "firmware", "--reboot"});
  ASSERT_EQ(r.exit_code, 0) << r.describe << dev_->process().output();
  dev_->wait_boot();
  EXPECT_EQ(dev_->boot().slot, "ota_1");
  EXPECT_EQ(dev_->boot().state, "pending_verify");

  // The sketch's self-test passes after 3 s of uptime and confirms.
  ASSERT_TRUE(dev_->process().wait_for_output("self-test: passed, image confirmed", kWait, /*from_stderr=*/true))
      << dev_->process().output();
  EXPECT_EQ(fw_state(), "valid");
  EXPECT_NE(read_file(data_ / "mdns.txt").find("fw=valid"), std::string::npos);

  reset("confirmafterselftest-host");
  EXPECT_EQ(dev_->boot().slot, "ota_1");
  EXPECT_EQ(dev_->boot().state, "valid");
  EXPECT_EQ(dev_->boot().sha256, sha256_file_hex(img));
  EXPECT_FALSE(dev_->boot().rollback);

  // And the next update goes to the other slot (ota_0), replacing the factory image.
  const fs::path img2 = image("fw2.bin", 100 * 1024, 10);
  const auto r2 = push(img2, {"--kind", "firmware", "--reboot"});
  ASSERT_EQ(r2.exit_code, 0) << r2.describe;
  dev_->wait_boot();
  EXPECT_EQ(dev_->boot().slot, "ota_0");
  EXPECT_EQ(dev_->boot().sha256, sha256_file_hex(img2));
}

TEST_F(ArduinoHost, AutoConfirmAfterUptime) {
  start("basicota-host", {"--auto-confirm", "2"});  // BasicOTA's setAutoConfirm(OTTER_AUTO_CONFIRM_S)
  const fs::path img = image("fw.bin", 100 * 1024, 15);
  const auto r = push(img, {"--kind", "firmware", "--reboot"});
  ASSERT_EQ(r.exit_code, 0) << r.describe << dev_->process().output();
  dev_->wait_boot();
  EXPECT_EQ(dev_->boot().state, "pending_verify");
  // handle() confirms once millis() passes 2 s. Poll the device's reported state (bounded) until it changes.
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  std::string state = fw_state();
  while (state != "valid" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(200ms);  // poll interval, not a synchronisation: the loop re-checks the state
    state = fw_state();
  }
  EXPECT_EQ(state, "valid");
  reset();
  EXPECT_EQ(dev_->boot().slot, "ota_1");
  EXPECT_EQ(dev_->boot().state, "valid");
  EXPECT_FALSE(dev_->boot().rollback);
}

// --- task mode ---------------------------------------------------------------------------------------------------

TEST_F(ArduinoHost, TaskModeServesWhileLoopBlocksAndConfirmsFromLoop) {
  // TaskMode's loop() only sleeps and checks the firmware state: every byte is served by OtterOTA's own task.
  start("taskmode-host");
  const fs::path src = source("cfg.bin", 200 * 1024, 21);
  const auto r = push(src, {"--as", "cfg.bin"});
  ASSERT_EQ(r.exit_code, 0) << r.describe << dev_->process().output();
  EXPECT_EQ(sha256_file_hex(data_ / "littlefs" / "cfg.bin"), sha256_file_hex(src));

  const fs::path img = image("fw.bin", 150 * 1024, 22);
  const auto f = push(img, {"--kind", "firmware", "--reboot"});
  ASSERT_EQ(f.exit_code, 0) << f.describe << dev_->process().output();
  dev_->wait_boot();  // ESP.restart() from the task re-executed the program
  EXPECT_EQ(dev_->boot().slot, "ota_1");
  EXPECT_EQ(dev_->boot().state, "pending_verify");
  EXPECT_EQ(dev_->boot().sha256, sha256_file_hex(img));
  // loop() confirms after three rounds; the task re-advertises the new state over mDNS.
  ASSERT_TRUE(dev_->process().wait_for_output("otter: new firmware confirmed", kWait, /*from_stderr=*/true))
      << dev_->process().output();
  EXPECT_EQ(fw_state(), "valid");
  reset("taskmode-host");
  EXPECT_EQ(dev_->boot().slot, "ota_1");
  EXPECT_EQ(dev_->boot().state, "valid");
  EXPECT_FALSE(dev_->boot().rollback);
}

TEST_F(ArduinoHost, CorruptedImageNeverBecomesBootable) {
  start();
  const fs::path img = image("fw.bin", 256 * 1024, 11);
  {
    // One bit flipped in flight, inside a DATA payload (PUSH is 3 + 109 + 6 bytes, then DATA frames of 3 + 61440).
    FaultProxy proxy(dev_->endpoint().port, ProxyFaults::corrupt(100 * 1024));
    const auto r = push(img, {"--kind", "firmware", "--reboot"}, "127.0.0.1:" + std::to_string(proxy.port()));
    EXPECT_TRUE(proxy.corrupted());
    EXPECT_EQ(r.exit_code, 1) << r.describe;
    expect_json_error(r, 5, "HASH_MISMATCH");
  }
  EXPECT_EQ(fw_state(), "valid");  // no reboot happened: the device still answers, on the old image

  // Same with the announced SHA-256 of other content (what the device checks is the same).
  std::string bytes = read_file(img);
  bytes[200 * 1024] = static_cast<char>(bytes[200 * 1024] ^ 0x40);
  const fs::path bad = dir_ / "src" / "fw-corrupt.bin";
  write_file(bad, bytes);
  const auto r2 = push(bad, {"--kind", "firmware", "--reboot", "--sha256", sha256_file_hex(img)});
  expect_json_error(r2, 5, "HASH_MISMATCH");

  // The written slot never got its first bytes: not bootable, and not the boot partition.
  EXPECT_EQ(static_cast<unsigned char>(read_file(data_ / "flash" / "ota_1.bin")[0]), 0xFFu);
  reset();
  EXPECT_EQ(dev_->boot().slot, "ota_0");
  EXPECT_EQ(dev_->boot().sha256, factory_sha_);
  EXPECT_FALSE(dev_->boot().rollback);
}

TEST_F(ArduinoHost, ImageWithoutMagicIsRefusedByUpdate) {
  start();
  const fs::path img = image("not-an-app.bin", 64 * 1024, 12, '\x00');
  const auto r = push(img, {"--kind", "firmware", "--reboot"});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 6, "STORAGE");
  EXPECT_NE(r.out.find("Wrong Magic Byte"), std::string::npos) << r.describe;
  reset();
  EXPECT_EQ(dev_->boot().slot, "ota_0");
  EXPECT_EQ(dev_->boot().sha256, factory_sha_);
}

TEST_F(ArduinoHost, FirmwareCutMidwayKeepsTheOldImage) {
  start();
  const fs::path img = image("fw.bin", 400 * 1024, 13);
  {
    FaultProxy proxy(dev_->endpoint().port, ProxyFaults::cut(150 * 1024));
    const auto first = push(img, {"--kind", "firmware", "--reboot"}, "127.0.0.1:" + std::to_string(proxy.port()));
    ASSERT_TRUE(proxy.wait_done(kWait));
    EXPECT_TRUE(proxy.cut());
    EXPECT_EQ(first.exit_code, 1) << first.describe;
  }
  ASSERT_TRUE(dev_->process().wait_for_output("otter: error 101", kWait, /*from_stderr=*/true))
      << dev_->process().output();
  reset();
  EXPECT_EQ(dev_->boot().slot, "ota_0");
  EXPECT_EQ(dev_->boot().sha256, factory_sha_);

  // Firmware does not resume: the next push starts from 0 and succeeds.
  const auto again = push(img, {"--kind", "firmware"});
  ASSERT_EQ(again.exit_code, 0) << again.describe << dev_->process().output();
  EXPECT_EQ(again.json().value("resumed_from", std::uint64_t{1}), 0u);
  EXPECT_EQ(again.json().value("rebooting", true), false);
  reset();  // without --reboot the new image is still the next boot
  EXPECT_EQ(dev_->boot().slot, "ota_1");
  EXPECT_EQ(dev_->boot().state, "pending_verify");
}

TEST_F(ArduinoHost, FirmwareLargerThanTheSlotIsNoSpace) {
  start();
  const fs::path img = image("big.bin", 0x140000 + 1, 14);
  const auto r = push(img, {"--kind", "firmware"});
  EXPECT_EQ(r.exit_code, 1) << r.describe;
  expect_json_error(r, 3, "NO_SPACE");
}

}  // namespace
}  // namespace otter::test
