// otter test emulation — the chip's state shared by the flash, OTA and boot emulations (internal).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>

#include "esp_ota_ops.h"
#include "esp_partition.h"

namespace otter_emu::detail {

struct Slot {
  esp_partition_t partition{};
  std::filesystem::path file;
  std::uint32_t seq = 0;  ///< otadata sequence number; 0 = never selected
  esp_ota_img_states_t state = ESP_OTA_IMG_UNDEFINED;
  std::uint64_t extent = 0;  ///< end of the highest write since the tail was last erased (the image length)
};

struct Chip {
  std::recursive_mutex mu;
  bool powered = false;
  std::filesystem::path flash_dir;
  std::array<Slot, 2> slots;
  int running = -1;
  std::function<void()> restart;
};

Chip& chip();
/// The slot of a partition pointer handed out by esp_partition_find_first / esp_ota_* (nullptr if foreign).
Slot* slot_of(const esp_partition_t* p);
/// Persists the per-slot sequence numbers, states and extents to flash_dir/otadata.
void save_otadata();
/// The first byte of the slot's image (0xFF if erased).
std::uint8_t first_byte(const Slot& s);

const char* state_name(esp_ota_img_states_t s);

}  // namespace otter_emu::detail
