// otter test emulation — the ESP32's power-on and bootloader, for host builds of the firmware.
//
// DATA/flash/ holds the emulated flash: ota_0.bin and ota_1.bin (app partitions, kSlotSize bytes each, erased =
// 0xFF) and otadata (the OTA data partition: per slot its sequence number and image state, one line per slot).
// The first power_on() creates them with a factory image in ota_0 (state VALID).
//
// power_on() is what the second-stage bootloader does with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE:
//   - the candidate is the slot with the highest sequence number whose state is not INVALID / ABORTED and whose
//     image starts with ESP_IMAGE_HEADER_MAGIC; a slot failing the magic check is marked INVALID;
//   - a candidate in state PENDING_VERIFY was booted before and never confirmed: it is marked ABORTED and the
//     other slot is taken (rollback);
//   - a candidate in state NEW becomes PENDING_VERIFY and boots;
//   - no bootable slot: power_on throws std::runtime_error("no bootable app").
// It prints one line on stdout for tests to parse:
//   "emu-boot: slot=ota_1 state=pending_verify sha256=<64 hex of the image's written bytes> rollback=0|1"
// (sha256 covers the image length recorded when it was written; rollback=1 if this boot rolled back).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace otter_emu {

constexpr std::uint32_t kSlotSize = 0x140000;  // 1.25 MiB, as the default ESP32 two-OTA partition table

struct BootInfo {
  std::string slot;          ///< "ota_0" or "ota_1"
  std::string state;         ///< "valid", "pending_verify", "undefined"
  std::string sha256;        ///< hex SHA-256 of the running image
  bool rolled_back = false;  ///< this power-on rolled back from an unconfirmed image
};

/// Emulated power-on of the chip whose flash lives in data_dir/flash (see above). Call once per process, first.
BootInfo power_on(const std::filesystem::path& data_dir);

/// What esp_restart() does. Default: flushes stdio and exits the process with status 0.
void set_restart_handler(std::function<void()> handler);

/// Makes esp_restart() re-execute this program (/proc/self/exe) with the same argv: a reboot keeps the command line
/// and the data directory, so the emulated device comes back on the same port. File descriptors are closed on exec.
void restart_by_reexec(int argc, char** argv);

}  // namespace otter_emu
