// The OtterOTA library's storage port and the host emulations it runs on, without the network; and the library's
// memory figures.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "LittleFS.h"
#include "OtterOTA.h"
#include "Update.h"
#include "esp_ota_ops.h"
#include "otter/core/receiver.hpp"
#include "otter/ports/mbedtls_crypto.hpp"
#include "otter/test/files.hpp"
#include "otter/test/temp_dir.hpp"
#include "otter_arduino/storage.h"
#include "otter_emu/chip.hpp"
#include "otter_host.hpp"

namespace {

namespace stdfs = std::filesystem;
using otter::core::ByteView;

ByteView view(const std::string& s) { return ByteView(s.data(), s.size()); }
const std::uint8_t* bytes(const std::string& s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }

class ArduinoEmu : public ::testing::Test {
 protected:
  void SetUp() override {
    otter_host::detail::set_data_dir(dir_.path());
    LittleFS.end();
    ASSERT_TRUE(LittleFS.begin(true));
  }
  void TearDown() override { LittleFS.end(); }
  stdfs::path host(const std::string& p) const { return dir_ / "littlefs" / p; }

  otter::test::TempDir dir_{"otter-arduino-unit"};
};

uint64_t littlefs_free() { return LittleFS.totalBytes() - LittleFS.usedBytes(); }

TEST(ArduinoMemory, SizesOfTheLibraryObjects) {
  // Printed for docs (x86-64 host; pointers are 4 bytes on the ESP32, so its figures are somewhat smaller).
  std::printf("sizeof(OtterOTAClass) = %zu\n", sizeof(OtterOTAClass));
  std::printf("sizeof(otter::core::Receiver) = %zu\n", sizeof(otter::core::Receiver));
  std::printf("sizeof(otter::ports::MbedTlsCrypto) = %zu\n", sizeof(otter::ports::MbedTlsCrypto));
  std::printf("sizeof(otter_arduino::DeviceStorage) = %zu\n", sizeof(otter_arduino::DeviceStorage));
  std::printf("OtterOTAClass::kRxBuffer = %zu\n", OtterOTAClass::kRxBuffer);
  // Debian's libmbedcrypto enables MBEDTLS_HAVEGE_C (a 32 KiB state inside mbedtls_entropy_context); the ESP32's
  // mbedTLS does not. Everything but the crypto context stays within 8 KiB.
  EXPECT_LE(sizeof(OtterOTAClass) - sizeof(otter::ports::MbedTlsCrypto), 8u * 1024u);
}

// --- LittleFS emulation: the semantics the storage port relies on -----------------------------------------------

TEST_F(ArduinoEmu, LittleFsRenameReplacesAndRefusesOpenFiles) {
  File a = LittleFS.open("/a", FILE_WRITE);
  ASSERT_TRUE(a);
  a.write(bytes("new"), 3);
  File b = LittleFS.open("/b", FILE_WRITE);
  b.write(bytes("old"), 3);
  b.close();
  EXPECT_FALSE(LittleFS.rename("/a", "/b"));  // the source is open (EBUSY)
  a.close();
  File reader = LittleFS.open("/b", FILE_READ);
  EXPECT_FALSE(LittleFS.rename("/a", "/b"));  // the target is open
  EXPECT_FALSE(LittleFS.remove("/b"));
  reader.close();
  EXPECT_TRUE(LittleFS.rename("/a", "/b"));  // replaces the existing file
  EXPECT_EQ(otter::test::read_file(host("b")), "new");
  EXPECT_FALSE(LittleFS.exists("/a"));
  EXPECT_FALSE(LittleFS.rename("/b", "/missing/b"));  // the target's parent must exist
  EXPECT_FALSE(LittleFS.open("/x/y", FILE_WRITE));    // no parent, no create flag
  EXPECT_TRUE(LittleFS.open("/x/y", FILE_WRITE, true));
  EXPECT_FALSE(LittleFS.open(("/" + std::string(65, 'n')).c_str(), FILE_WRITE));  // over LFS_NAME_MAX
}

TEST_F(ArduinoEmu, LittleFsIsFullAtItsCapacity) {
  otter_host::detail::set_fs_capacity(64 * 1024);
  File f = LittleFS.open("/big", FILE_WRITE);
  const std::string chunk(4096, 'x');
  size_t total = 0;
  for (int i = 0; i < 32; ++i) total += f.write(bytes(chunk), chunk.size());
  f.close();
  EXPECT_LT(total, 64u * 1024u);
  EXPECT_GE(total, 48u * 1024u);
  EXPECT_LE(LittleFS.usedBytes(), LittleFS.totalBytes());
  otter_host::detail::set_fs_capacity(0x160000);
}

// --- the storage port on LittleFS -------------------------------------------------------------------------------

TEST_F(ArduinoEmu, FileTransferResumesFromItsPartialCopy) {
  otter::ports::MbedTlsSha256 hasher;
  const std::string content = otter::test::random_bytes(10000, 1);
  const auto sha = otter::test::sha256(content);
  {
    otter_arduino::DeviceStorage st(LittleFS, littlefs_free);
    auto held = st.begin(view(std::string("d/f.bin")), otter::core::Kind::file, content.size(), sha.data(), hasher);
    ASSERT_TRUE(held.has_value());
    EXPECT_EQ(*held, 0u);
    ASSERT_TRUE(st.write(bytes(content), 4000).has_value());
    st.suspend();
  }
  EXPECT_FALSE(stdfs::exists(host("d/f.bin")));
  otter_arduino::DeviceStorage st(LittleFS, littlefs_free);
  hasher.reset();
  auto held = st.begin(view(std::string("d/f.bin")), otter::core::Kind::file, content.size(), sha.data(), hasher);
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(*held, 4000u);
  ASSERT_TRUE(st.write(bytes(content) + 4000, content.size() - 4000).has_value());
  hasher.update(bytes(content) + 4000, content.size() - 4000);
  std::uint8_t digest[32];
  hasher.finish(digest);
  EXPECT_EQ(otter::test::to_hex(digest, 32), otter::test::to_hex(sha.data(), 32));  // re-hashed the held bytes
  ASSERT_TRUE(st.commit().has_value());
  EXPECT_EQ(otter::test::read_file(host("d/f.bin")), content);
  EXPECT_EQ(otter::test::list_tree(dir_ / "littlefs"),
            (std::vector<std::string>{".otter/", ".otter/part/", "d/", "d/f.bin"}));
}

TEST_F(ArduinoEmu, FileTransferWithOtherContentStartsOver) {
  otter::ports::MbedTlsSha256 hasher;
  const std::string v1 = otter::test::random_bytes(5000, 2);
  const std::string v2 = otter::test::random_bytes(5000, 3);
  otter_arduino::DeviceStorage st(LittleFS, littlefs_free);
  ASSERT_TRUE(
      st.begin(view(std::string("f")), otter::core::Kind::file, v1.size(), otter::test::sha256(v1).data(), hasher));
  ASSERT_TRUE(st.write(bytes(v1), 3000));
  st.suspend();
  hasher.reset();
  auto held =
      st.begin(view(std::string("f")), otter::core::Kind::file, v2.size(), otter::test::sha256(v2).data(), hasher);
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(*held, 0u);
  st.discard();
  EXPECT_EQ(otter::test::list_tree(dir_ / "littlefs"), (std::vector<std::string>{".otter/", ".otter/part/"}));
}

// --- Update emulation on the chip emulation ---------------------------------------------------------------------

TEST_F(ArduinoEmu, UpdateWritesTheImageHeaderLast) {
  otter_emu::power_on(dir_.path());
  const esp_partition_t* next = esp_ota_get_next_update_partition(nullptr);
  ASSERT_NE(next, nullptr);
  std::string image = otter::test::random_bytes(10000, 4);
  image[0] = static_cast<char>(0xE9);
  ASSERT_TRUE(Update.begin(image.size(), U_FLASH));
  ASSERT_EQ(Update.write(reinterpret_cast<uint8_t*>(image.data()), image.size()), image.size());
  std::uint8_t head[16];
  ASSERT_EQ(esp_partition_read(next, 0, head, sizeof head), ESP_OK);
  for (std::uint8_t b : head) EXPECT_EQ(b, 0xFF);  // held back: a partial image never boots
  ASSERT_TRUE(Update.end(true));
  ASSERT_EQ(esp_partition_read(next, 0, head, sizeof head), ESP_OK);
  EXPECT_EQ(head[0], 0xE9);
  EXPECT_EQ(esp_ota_get_boot_partition(), next);

  // A wrong magic byte: refused with the real error text, nothing activated.
  std::string bad = otter::test::random_bytes(5000, 5);
  bad[0] = 0;
  ASSERT_TRUE(Update.begin(bad.size(), U_FLASH));
  EXPECT_LT(Update.write(reinterpret_cast<uint8_t*>(bad.data()), bad.size()), bad.size());
  EXPECT_EQ(Update.getError(), UPDATE_ERROR_MAGIC_BYTE);
  EXPECT_STREQ(Update.errorString(), "Wrong Magic Byte");
  EXPECT_FALSE(Update.end(true));
  EXPECT_FALSE(Update.begin(0x140000 + 1, U_FLASH));
  EXPECT_STREQ(Update.errorString(), "Bad Size Given");
}

}  // namespace
