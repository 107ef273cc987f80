// The ESP32 chip emulation itself: flash semantics, the OTA API's checks, and the bootloader's rollback — the
// behaviour the Arduino library and ESP-IDF component tests rely on.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "esp_app_format.h"
#include "esp_ota_ops.h"
#include "otter/test/files.hpp"
#include "otter/test/temp_dir.hpp"
#include "otter_emu/chip.hpp"

namespace {

std::string image(std::size_t n, std::uint64_t seed) {
  std::string img = otter::test::random_bytes(n, seed);
  img[0] = static_cast<char>(ESP_IMAGE_HEADER_MAGIC);
  return img;
}

// Writes img to the next update partition through esp_ota_* and makes it the boot partition.
void flash_image(const std::string& img) {
  const esp_partition_t* next = esp_ota_get_next_update_partition(nullptr);
  ASSERT_NE(next, nullptr);
  esp_ota_handle_t h = 0;
  ASSERT_EQ(esp_ota_begin(next, img.size(), &h), ESP_OK);
  for (std::size_t off = 0; off < img.size(); off += 1000)
    ASSERT_EQ(esp_ota_write(h, img.data() + off, std::min<std::size_t>(1000, img.size() - off)), ESP_OK);
  ASSERT_EQ(esp_ota_end(h), ESP_OK);
  ASSERT_EQ(esp_ota_set_boot_partition(next), ESP_OK);
}

esp_ota_img_states_t running_state() {
  esp_ota_img_states_t st = ESP_OTA_IMG_UNDEFINED;
  EXPECT_EQ(esp_ota_get_state_partition(esp_ota_get_running_partition(), &st), ESP_OK);
  return st;
}

TEST(EmuChip, FirstPowerOnBootsTheConfirmedFactoryImage) {
  otter::test::TempDir dir;
  const auto boot = otter_emu::power_on(dir.path());
  EXPECT_EQ(boot.slot, "ota_0");
  EXPECT_EQ(boot.state, "valid");
  EXPECT_FALSE(boot.rolled_back);
  EXPECT_EQ(running_state(), ESP_OTA_IMG_VALID);
  EXPECT_EQ(std::string(esp_ota_get_next_update_partition(nullptr)->label), "ota_1");
}

TEST(EmuChip, UnconfirmedImageRollsBackOnTheNextPowerOn) {
  otter::test::TempDir dir;
  const auto factory = otter_emu::power_on(dir.path());
  const std::string img = image(10000, 1);
  flash_image(img);

  auto boot = otter_emu::power_on(dir.path());
  EXPECT_EQ(boot.slot, "ota_1");
  EXPECT_EQ(boot.state, "pending_verify");
  EXPECT_EQ(boot.sha256, otter::test::sha256_hex(img));
  // An update may not start before the running image is confirmed.
  esp_ota_handle_t h = 0;
  EXPECT_EQ(esp_ota_begin(esp_ota_get_next_update_partition(nullptr), 100, &h), ESP_ERR_OTA_ROLLBACK_INVALID_STATE);

  boot = otter_emu::power_on(dir.path());  // reset without confirming
  EXPECT_EQ(boot.slot, "ota_0");
  EXPECT_TRUE(boot.rolled_back);
  EXPECT_EQ(boot.sha256, factory.sha256);
  esp_ota_img_states_t st{};
  ASSERT_EQ(esp_ota_get_state_partition(
                esp_partition_find_first(ESP_PARTITION_TYPE_APP, ESP_PARTITION_SUBTYPE_APP_OTA_1, nullptr), &st),
            ESP_OK);
  EXPECT_EQ(st, ESP_OTA_IMG_ABORTED);
  EXPECT_EQ(otter_emu::power_on(dir.path()).slot, "ota_0");  // and stays rolled back
}

TEST(EmuChip, ConfirmedImageStays) {
  otter::test::TempDir dir;
  otter_emu::power_on(dir.path());
  const std::string img = image(5000, 2);
  flash_image(img);
  otter_emu::power_on(dir.path());
  ASSERT_EQ(esp_ota_mark_app_valid_cancel_rollback(), ESP_OK);
  EXPECT_EQ(running_state(), ESP_OTA_IMG_VALID);
  const auto boot = otter_emu::power_on(dir.path());
  EXPECT_EQ(boot.slot, "ota_1");
  EXPECT_EQ(boot.state, "valid");
  EXPECT_EQ(boot.sha256, otter::test::sha256_hex(img));
  EXPECT_TRUE(esp_ota_check_rollback_is_possible());
}

TEST(EmuChip, ImagesWithoutTheMagicByteAreRefused) {
  otter::test::TempDir dir;
  otter_emu::power_on(dir.path());
  const esp_partition_t* next = esp_ota_get_next_update_partition(nullptr);
  esp_ota_handle_t h = 0;
  ASSERT_EQ(esp_ota_begin(next, OTA_SIZE_UNKNOWN, &h), ESP_OK);
  const std::string bad = "not an image";
  EXPECT_EQ(esp_ota_write(h, bad.data(), bad.size()), ESP_ERR_OTA_VALIDATE_FAILED);
  EXPECT_EQ(esp_ota_end(h), ESP_ERR_OTA_VALIDATE_FAILED);
  EXPECT_EQ(esp_ota_set_boot_partition(next), ESP_ERR_OTA_VALIDATE_FAILED);
  EXPECT_EQ(otter_emu::power_on(dir.path()).slot, "ota_0");
}

TEST(EmuChip, MagicWrittenLastMeansAPartialImageNeverBoots) {
  // The Arduino Update library's order: everything but the first bytes, then the first bytes at the end.
  otter::test::TempDir dir;
  otter_emu::power_on(dir.path());
  const esp_partition_t* next = esp_ota_get_next_update_partition(nullptr);
  const std::string img = image(8192, 3);
  ASSERT_EQ(esp_partition_erase_range(next, 0, 8192), ESP_OK);
  ASSERT_EQ(esp_partition_write(next, 16, img.data() + 16, img.size() - 16), ESP_OK);
  EXPECT_EQ(esp_ota_set_boot_partition(next), ESP_ERR_OTA_VALIDATE_FAILED);  // cut before the head was written
  ASSERT_EQ(esp_partition_write(next, 0, img.data(), 16), ESP_OK);
  ASSERT_EQ(esp_ota_set_boot_partition(next), ESP_OK);
  const auto boot = otter_emu::power_on(dir.path());
  EXPECT_EQ(boot.slot, "ota_1");
  EXPECT_EQ(boot.sha256, otter::test::sha256_hex(img));
}

TEST(EmuChip, FlashWritesOnlyClearBitsAndEraseIsBySector) {
  otter::test::TempDir dir;
  otter_emu::power_on(dir.path());
  const esp_partition_t* next = esp_ota_get_next_update_partition(nullptr);
  ASSERT_EQ(esp_partition_erase_range(next, 0, SPI_FLASH_SEC_SIZE), ESP_OK);
  const std::uint8_t a = 0xF0, b = 0x3C;
  ASSERT_EQ(esp_partition_write(next, 0, &a, 1), ESP_OK);
  ASSERT_EQ(esp_partition_write(next, 0, &b, 1), ESP_OK);
  std::uint8_t got = 0;
  ASSERT_EQ(esp_partition_read(next, 0, &got, 1), ESP_OK);
  EXPECT_EQ(got, 0x30);
  EXPECT_EQ(esp_partition_erase_range(next, 1, SPI_FLASH_SEC_SIZE), ESP_ERR_INVALID_SIZE);
  EXPECT_EQ(esp_partition_write(next, next->size, &a, 1), ESP_ERR_INVALID_SIZE);
  esp_ota_handle_t h = 0;
  EXPECT_EQ(esp_ota_begin(esp_ota_get_running_partition(), 10, &h), ESP_ERR_OTA_PARTITION_CONFLICT);
  EXPECT_EQ(esp_ota_begin(next, next->size + 1, &h), ESP_ERR_INVALID_SIZE);
}

TEST(EmuChip, InvalidatingTheRunningImageRestartsIntoThePreviousOne) {
  otter::test::TempDir dir;
  otter_emu::power_on(dir.path());
  EXPECT_EQ(esp_ota_mark_app_invalid_rollback_and_reboot(), ESP_ERR_OTA_ROLLBACK_FAILED);  // nothing to go back to
  flash_image(image(3000, 4));
  otter_emu::power_on(dir.path());
  int restarts = 0;
  otter_emu::set_restart_handler([&] {
    ++restarts;
    throw std::runtime_error("restarted");  // leave esp_restart() without exiting the test process
  });
  EXPECT_THROW(esp_ota_mark_app_invalid_rollback_and_reboot(), std::runtime_error);
  otter_emu::set_restart_handler({});
  EXPECT_EQ(restarts, 1);
  const auto boot = otter_emu::power_on(dir.path());
  EXPECT_EQ(boot.slot, "ota_0");
  EXPECT_FALSE(boot.rolled_back);  // ota_1 was marked invalid by the app, not rolled back by the bootloader
}

}  // namespace
