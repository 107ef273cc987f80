// The component's C API (include/otter_ota.h) in-process, against the host emulations: the documented error codes of
// otter_ota_start / otter_ota_stop, the events, and the memory figures. The chip is powered on once per process (a
// shared emulated flash); every test has its own base path.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "esp_crypto.hpp"
#include "esp_storage.hpp"
#include "otter/core/receiver.hpp"
#include "otter/test/agent.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/files.hpp"
#include "otter/test/process.hpp"
#include "otter/test/tcp.hpp"
#include "otter/test/temp_dir.hpp"
#include "otter_emu/chip.hpp"
#include "otter_ota.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr char kKey[] = "api-test-device-key-0123456789";

void power_on_once() {
  static otter::test::TempDir chip{"otter-idf-api-chip"};
  static const bool powered = [] {
    otter_emu::power_on(chip.path());
    return true;
  }();
  (void)powered;
}

struct Events {
  std::mutex mu;
  std::vector<otter_ota_event_t> list;
  std::vector<std::string> names;
  static void cb(const otter_ota_event_t* e, void* ctx) {
    auto* self = static_cast<Events*>(ctx);
    std::lock_guard lk(self->mu);
    self->list.push_back(*e);
    self->names.emplace_back(e->name != nullptr ? e->name : "");
  }
};

class OtterOtaApi : public ::testing::Test {
 protected:
  void SetUp() override {
    power_on_once();
    base_ = (dir_ / "fs").string();
    fs::create_directories(base_);
    cfg_.port = 0;
    cfg_.key = reinterpret_cast<const std::uint8_t*>(kKey);
    cfg_.key_len = sizeof kKey - 1;
    cfg_.device_id = "api-dev";
    cfg_.base_path = base_.c_str();
    cfg_.accept_firmware = true;
    cfg_.buffer_size = 4096;
    cfg_.window = 16384;
    cfg_.idle_timeout_ms = 5000;
    cfg_.task_stack_size = 8192;
    cfg_.task_priority = 5;
  }
  void TearDown() override {
    if (otter_ota_get_port() != 0) otter_ota_stop();
  }

  otter::test::TempDir dir_{"otter-idf-api"};
  std::string base_;
  otter_ota_config_t cfg_{};
};

TEST_F(OtterOtaApi, StartRefusesBadConfigurations) {
  EXPECT_EQ(otter_ota_start(nullptr), ESP_ERR_INVALID_ARG);
  auto c = cfg_;
  c.key_len = 15;
  EXPECT_EQ(otter_ota_start(&c), ESP_ERR_INVALID_ARG);
  c = cfg_;
  c.device_id = "bad\nid";
  EXPECT_EQ(otter_ota_start(&c), ESP_ERR_INVALID_ARG);
  c = cfg_;
  const std::string long_base(65, 'b');
  c.base_path = long_base.c_str();
  EXPECT_EQ(otter_ota_start(&c), ESP_ERR_INVALID_ARG);
  c = cfg_;
  c.base_path = nullptr;
  c.accept_firmware = false;
  EXPECT_EQ(otter_ota_start(&c), ESP_ERR_INVALID_ARG);
  c = cfg_;
  c.buffer_size = 100;
  EXPECT_EQ(otter_ota_start(&c), ESP_ERR_INVALID_ARG);
  c = cfg_;
  c.key = nullptr;  // the Kconfig source (NVS) is not initialised in this process: no key
  EXPECT_EQ(otter_ota_start(&c), ESP_ERR_NOT_FOUND);
  EXPECT_EQ(otter_ota_get_port(), 0);
}

TEST_F(OtterOtaApi, StartServesAndStopEnds) {
  ASSERT_EQ(otter_ota_start(&cfg_), ESP_OK);
  const std::uint16_t port = otter_ota_get_port();
  ASSERT_NE(port, 0);
  EXPECT_EQ(otter_ota_start(&cfg_), ESP_ERR_INVALID_STATE);
  {
    otter::test::TcpClient c("127.0.0.1", port);
    const auto hello = c.read_frame(5s);
    ASSERT_TRUE(hello);
    EXPECT_EQ(hello->type, 0x01);
    // caps (u16 after the version byte and the magic): FILE | FIRMWARE | RESUME | STAT | REBOOT
    ASSERT_GE(hello->payload.size(), 7u);
  }
  EXPECT_EQ(otter_ota_stop(), ESP_OK);
  EXPECT_EQ(otter_ota_get_port(), 0);
  EXPECT_EQ(otter_ota_stop(), ESP_ERR_INVALID_STATE);
  EXPECT_THROW(otter::test::TcpClient("127.0.0.1", port, 2s), std::runtime_error);
  // It starts again after a stop.
  ASSERT_EQ(otter_ota_start(&cfg_), ESP_OK);
  EXPECT_EQ(otter_ota_stop(), ESP_OK);
}

TEST_F(OtterOtaApi, StopDuringAnOpenSessionReturnsPromptly) {
  ASSERT_EQ(otter_ota_start(&cfg_), ESP_OK);
  otter::test::TcpClient c("127.0.0.1", otter_ota_get_port());
  ASSERT_TRUE(c.read_frame(5s));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(otter_ota_stop(), ESP_OK);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_TRUE(c.wait_closed(5s));
}

TEST_F(OtterOtaApi, SilentPeerGetsTimeoutAndTheNextSessionIsServed) {
  auto c = cfg_;
  c.idle_timeout_ms = 1000;
  ASSERT_EQ(otter_ota_start(&c), ESP_OK);
  otter::test::TcpClient silent("127.0.0.1", otter_ota_get_port());
  ASSERT_TRUE(silent.read_frame(5s));  // HELLO
  const auto t0 = std::chrono::steady_clock::now();
  const auto err = silent.read_frame(10s);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->type, 0x7F);
  ASSERT_GE(err->payload.size(), 2u);
  EXPECT_EQ(err->payload[1], 9);  // TIMEOUT
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
  EXPECT_TRUE(silent.wait_closed(5s));
  otter::test::TcpClient next("127.0.0.1", otter_ota_get_port());
  const auto hello = next.read_frame(5s);
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->type, 0x01);
}

TEST_F(OtterOtaApi, PortInUseIsEspFail) {
  otter::test::RefusedPort taken;
  auto c = cfg_;
  c.port = taken.port();
  EXPECT_EQ(otter_ota_start(&c), ESP_FAIL);
  EXPECT_EQ(otter_ota_get_port(), 0);
}

TEST_F(OtterOtaApi, ConfirmOfAValidImageIsOk) {
  EXPECT_EQ(otter_ota_get_fw_state(), OTTER_OTA_FW_VALID);
  EXPECT_EQ(otter_ota_confirm(), ESP_OK);
  EXPECT_EQ(otter_ota_get_fw_state(), OTTER_OTA_FW_VALID);
}

TEST_F(OtterOtaApi, EventsFollowAPushAndAnError) {
  Events ev;
  auto c = cfg_;
  c.event_cb = Events::cb;
  c.event_ctx = &ev;
  ASSERT_EQ(otter_ota_start(&c), ESP_OK);
  const std::string to = "127.0.0.1:" + std::to_string(otter_ota_get_port());
  const auto key = otter::test::write_key_file(dir_ / "key", kKey);
  const auto src = dir_ / "data.bin";
  otter::test::write_random_file(src, 200 * 1024, 3);
  {
    otter::test::Process p(
        {otter::test::otter_bin(), "push", src.string(), "--to", to, "--key-file", key, "--as", "d/data.bin"});
    ASSERT_EQ(p.wait(30s), 0) << p.output();
  }
  const auto bad = otter::test::write_key_file(dir_ / "bad", "another-key-entirely-0123456");
  {
    otter::test::Process p(
        std::vector<std::string>{otter::test::otter_bin(), "push", src.string(), "--to", to, "--key-file", bad});
    ASSERT_EQ(p.wait(30s), 1) << p.output();
  }
  ASSERT_EQ(otter_ota_stop(), ESP_OK);  // the task has ended: every event has been delivered

  std::lock_guard lk(ev.mu);
  ASSERT_GE(ev.list.size(), 5u);
  EXPECT_EQ(ev.list.front().id, OTTER_OTA_EVENT_LISTENING);
  std::size_t start = 0, progress = 0, end = 0, error = 0;
  for (std::size_t i = 0; i < ev.list.size(); ++i) {
    const auto& e = ev.list[i];
    if (e.id == OTTER_OTA_EVENT_START) {
      ++start;
      EXPECT_EQ(ev.names[i], "d/data.bin");
      EXPECT_EQ(e.size, 200u * 1024);
      EXPECT_EQ(e.kind, OTTER_OTA_KIND_FILE);
    }
    if (e.id == OTTER_OTA_EVENT_PROGRESS) ++progress;
    if (e.id == OTTER_OTA_EVENT_END) {
      ++end;
      EXPECT_EQ(ev.names[i], "d/data.bin");
      EXPECT_FALSE(e.reboot);
    }
    if (e.id == OTTER_OTA_EVENT_ERROR) {
      ++error;
      EXPECT_EQ(e.error, 4);  // AUTH_FAILED
    }
  }
  EXPECT_EQ(start, 1u);
  EXPECT_GE(progress, 2u);
  EXPECT_LE(progress, 20u);  // throttled: every 16 KiB at least (200 KiB -> at most ~13)
  EXPECT_EQ(end, 1u);
  EXPECT_EQ(error, 1u);
  EXPECT_EQ(otter::test::sha256_file_hex(fs::path(base_) / "d" / "data.bin"), otter::test::sha256_file_hex(src));
}

// Not a check: the figures for the README (x86-64 sizes; an ESP32 build is smaller: 32-bit pointers).
TEST_F(OtterOtaApi, MemoryFigures) {
  std::printf("[figures] sizeof: Receiver %zu, EspStorage %zu, EspCrypto %zu\n", sizeof(otter::core::Receiver),
              sizeof(otter::esp::EspStorage), sizeof(otter::esp::EspCrypto));
  RecordProperty("sizeof_receiver", static_cast<int>(sizeof(otter::core::Receiver)));
  RecordProperty("sizeof_storage", static_cast<int>(sizeof(otter::esp::EspStorage)));
  RecordProperty("sizeof_crypto", static_cast<int>(sizeof(otter::esp::EspCrypto)));
}

}  // namespace
