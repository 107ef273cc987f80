// otter-server jobs on stock devices: WebREPL and ArduinoOTA simulators registered under their protocol, deployed to
// through the REST API like any otter device (the legacy receiver's job test is in legacy_test.cpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "otter/test/files.hpp"
#include "stock_job.hpp"

namespace otter::test {
namespace {

namespace fs = std::filesystem;

TEST_F(StockJobTest, WebreplDeviceGetsTheArtifactReadBackAndAWrongPasswordFails) {
  start();
  write_file(dir_ / "wr.pw", "s3cret!\n");
  const fs::path dev_root = dir_ / "webrepl-device";
  const auto ep = start_simulator("webrepl", dev_root, {"--password-file", (dir_ / "wr.pw").string()});
  register_device("mp-1", ep.address(), "webrepl", "s3cret!");
  register_device("mp-wrong", ep.address(), "webrepl", "wrong1");

  write_random_file(root() / "lib.mpy", 120 * 1024 + 5, 31);
  auto ok = run_job({{"artifact", "lib.mpy"}, {"devices", {"mp-1"}}, {"as", "app.mpy"}});
  EXPECT_EQ(ok.value("state", ""), "succeeded") << ok.dump() << simulator().output();
  EXPECT_EQ(sha256_file_hex(dev_root / "app.mpy"), sha256_file_hex(root() / "lib.mpy"));

  auto bad = run_job({{"artifact", "lib.mpy"}, {"devices", {"mp-wrong"}}});
  EXPECT_EQ(bad.value("state", ""), "failed") << bad.dump();
  EXPECT_EQ(bad["devices"][0]["error"].value("code", 0), 4) << bad.dump();  // AUTH_FAILED: "Access denied"
}

TEST_F(StockJobTest, ArduinoOtaDeviceIsFlashedThroughTheServer) {
  start();
  write_file(dir_ / "ota.pw", "ota-password\n");
  const fs::path dev_root = dir_ / "ota-device";
  const auto ep = start_simulator("arduino-ota", dev_root, {"--password-file", (dir_ / "ota.pw").string()});
  register_device("esp-ota", ep.address(), "arduino-ota", "ota-password");
  register_device("esp-ota-wrong", ep.address(), "arduino-ota", "not-the-password");

  write_firmware_image(root() / "fw.bin", 300 * 1024, 32);
  auto fw = run_job({{"artifact", "fw.bin"}, {"devices", {"esp-ota"}}, {"kind", "firmware"}});
  ASSERT_EQ(fw.value("state", ""), "succeeded") << fw.dump() << simulator().output();
  EXPECT_EQ(sha256_file_hex(dev_root / "firmware.bin"), sha256_file_hex(root() / "fw.bin"));

  write_random_file(root() / "data.img", 64 * 1024, 33);
  auto fsimg = run_job({{"artifact", "data.img"}, {"devices", {"esp-ota"}}, {"kind", "filesystem"}});
  ASSERT_EQ(fsimg.value("state", ""), "succeeded") << fsimg.dump();
  EXPECT_EQ(sha256_file_hex(dev_root / "filesystem.bin"), sha256_file_hex(root() / "data.img"));

  // A wrong password: the job fails with AUTH_FAILED and the device keeps the image it had.
  write_firmware_image(root() / "fw2.bin", 100 * 1024, 34);
  auto bad = run_job({{"artifact", "fw2.bin"}, {"devices", {"esp-ota-wrong"}}, {"kind", "firmware"}});
  EXPECT_EQ(bad.value("state", ""), "failed") << bad.dump();
  EXPECT_EQ(bad["devices"][0]["error"].value("code", 0), 4) << bad.dump();
  EXPECT_EQ(sha256_file_hex(dev_root / "firmware.bin"), sha256_file_hex(root() / "fw.bin"));

  // Not an application image (no 0xE9 first byte): refused before the device is invited, with the reason.
  write_file(root() / "sketch.elf", std::string("\x7f"
                                                "ELF") +
                                        std::string(8000, 'x'));
  auto elf = run_job({{"artifact", "sketch.elf"}, {"devices", {"esp-ota"}}, {"kind", "firmware"}});
  EXPECT_EQ(elf.value("state", ""), "failed") << elf.dump();
  EXPECT_EQ(elf["devices"][0]["error"].value("code", 0), 11) << elf.dump();  // UNSUPPORTED_KIND
  EXPECT_NE(elf["devices"][0]["error"].value("message", "").find("not an ESP32 application image"), std::string::npos)
      << elf.dump();
  EXPECT_EQ(sha256_file_hex(dev_root / "firmware.bin"), sha256_file_hex(root() / "fw.bin"));
}

}  // namespace
}  // namespace otter::test
