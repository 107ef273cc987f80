// otter test emulation — ESP-IDF's app_update API (esp_ota_*) over the file-backed flash, rollback enabled.
//
// Image validation is reduced to what decides bootability here: the first byte must be ESP_IMAGE_HEADER_MAGIC
// (ESP-IDF also checks segment headers, the checksum and an appended SHA-256; otter verifies SHA-256 of the whole
// image itself before esp_ota_end).
#include <algorithm>
#include <map>

#include "chip_state.hpp"
#include "esp_app_format.h"
#include "esp_ota_ops.h"
#include "esp_system.h"

namespace {

using otter_emu::detail::chip;
using otter_emu::detail::Slot;

struct Handle {
  Slot* slot = nullptr;
  std::size_t written = 0;
  std::size_t erased = 0;  // bytes erased so far from offset 0 (sequential-writes mode erases as it goes)
  bool sequential = false;
};

std::map<esp_ota_handle_t, Handle>& handles() {
  static std::map<esp_ota_handle_t, Handle> h;
  return h;
}

Slot* running_slot() {
  auto& c = chip();
  return c.running < 0 ? nullptr : &c.slots[static_cast<std::size_t>(c.running)];
}

bool bootable(const Slot& s) {
  return s.seq != 0 && s.state != ESP_OTA_IMG_INVALID && s.state != ESP_OTA_IMG_ABORTED &&
         otter_emu::detail::first_byte(s) == ESP_IMAGE_HEADER_MAGIC;
}

}  // namespace

extern "C" esp_err_t esp_ota_begin(const esp_partition_t* partition, size_t image_size,
                                   esp_ota_handle_t* out_handle) {
  auto& c = chip();
  std::lock_guard lock(c.mu);
  Slot* s = otter_emu::detail::slot_of(partition);
  if (s == nullptr || out_handle == nullptr) return ESP_ERR_INVALID_ARG;
  if (s == running_slot()) return ESP_ERR_OTA_PARTITION_CONFLICT;
  // With rollback enabled an update may not start while the running image is unconfirmed.
  if (running_slot() != nullptr && running_slot()->state == ESP_OTA_IMG_PENDING_VERIFY)
    return ESP_ERR_OTA_ROLLBACK_INVALID_STATE;
  for (const auto& [id, h] : handles())
    if (h.slot == s) return ESP_ERR_OTA_PARTITION_CONFLICT;
  Handle h;
  h.slot = s;
  if (image_size == OTA_WITH_SEQUENTIAL_WRITES) {
    h.sequential = true;
  } else {
    std::size_t n = image_size == OTA_SIZE_UNKNOWN ? partition->size : image_size;
    if (n > partition->size) return ESP_ERR_INVALID_SIZE;
    n = (n + SPI_FLASH_SEC_SIZE - 1) / SPI_FLASH_SEC_SIZE * SPI_FLASH_SEC_SIZE;
    if (esp_err_t e = esp_partition_erase_range(partition, 0, n); e != ESP_OK) return e;
    h.erased = n;
  }
  // The slot's previous image is gone: it can no longer be booted or rolled back to.
  s->state = ESP_OTA_IMG_UNDEFINED;
  s->seq = 0;
  otter_emu::detail::save_otadata();
  static esp_ota_handle_t next = 1;
  *out_handle = next++;
  handles()[*out_handle] = h;
  return ESP_OK;
}

extern "C" esp_err_t esp_ota_write(esp_ota_handle_t handle, const void* data, size_t size) {
  auto& c = chip();
  std::lock_guard lock(c.mu);
  auto it = handles().find(handle);
  if (it == handles().end() || data == nullptr) return ESP_ERR_INVALID_ARG;
  Handle& h = it->second;
  if (size == 0) return ESP_OK;
  if (h.written == 0 && static_cast<const std::uint8_t*>(data)[0] != ESP_IMAGE_HEADER_MAGIC)
    return ESP_ERR_OTA_VALIDATE_FAILED;
  if (h.written + size > h.slot->partition.size) return ESP_ERR_INVALID_SIZE;
  if (h.sequential) {
    while (h.erased < h.written + size) {
      if (esp_err_t e = esp_partition_erase_range(&h.slot->partition, h.erased, SPI_FLASH_SEC_SIZE); e != ESP_OK)
        return e;
      h.erased += SPI_FLASH_SEC_SIZE;
    }
  } else if (h.written + size > h.erased) {
    return ESP_ERR_INVALID_SIZE;  // more than announced to esp_ota_begin
  }
  if (esp_err_t e = esp_partition_write(&h.slot->partition, h.written, data, size); e != ESP_OK) return e;
  h.written += size;
  return ESP_OK;
}

extern "C" esp_err_t esp_ota_end(esp_ota_handle_t handle) {
  auto& c = chip();
  std::lock_guard lock(c.mu);
  auto it = handles().find(handle);
  if (it == handles().end()) return ESP_ERR_NOT_FOUND;
  const Handle h = it->second;
  handles().erase(it);
  if (h.written == 0 || otter_emu::detail::first_byte(*h.slot) != ESP_IMAGE_HEADER_MAGIC)
    return ESP_ERR_OTA_VALIDATE_FAILED;
  h.slot->extent = h.written;
  otter_emu::detail::save_otadata();
  return ESP_OK;
}

extern "C" esp_err_t esp_ota_abort(esp_ota_handle_t handle) {
  auto& c = chip();
  std::lock_guard lock(c.mu);
  return handles().erase(handle) == 1 ? ESP_OK : ESP_ERR_NOT_FOUND;
}

extern "C" esp_err_t esp_ota_set_boot_partition(const esp_partition_t* partition) {
  auto& c = chip();
  std::lock_guard lock(c.mu);
  Slot* s = otter_emu::detail::slot_of(partition);
  if (s == nullptr) return ESP_ERR_INVALID_ARG;
  if (otter_emu::detail::first_byte(*s) != ESP_IMAGE_HEADER_MAGIC) return ESP_ERR_OTA_VALIDATE_FAILED;
  if (s == running_slot()) return ESP_OK;  // already the boot partition
  std::uint32_t top = 0;
  for (const auto& x : c.slots) top = std::max(top, x.seq);
  s->seq = top + 1;
  s->state = ESP_OTA_IMG_NEW;
  otter_emu::detail::save_otadata();
  return ESP_OK;
}

extern "C" const esp_partition_t* esp_ota_get_boot_partition(void) {
  auto& c = chip();
  std::lock_guard lock(c.mu);
  const Slot* best = nullptr;
  for (const auto& s : c.slots)
    if (bootable(s) && (best == nullptr || s.seq > best->seq)) best = &s;
  return best == nullptr ? nullptr : &best->partition;
}

extern "C" const esp_partition_t* esp_ota_get_running_partition(void) {
  auto& c = chip();
  std::lock_guard lock(c.mu);
  return running_slot() == nullptr ? nullptr : &running_slot()->partition;
}

extern "C" const esp_partition_t* esp_ota_get_next_update_partition(const esp_partition_t* start_from) {
  auto& c = chip();
  std::lock_guard lock(c.mu);
  const Slot* from = start_from == nullptr ? running_slot() : otter_emu::detail::slot_of(start_from);
  if (from == nullptr) return nullptr;
  for (const auto& s : c.slots)
    if (&s != from && &s != running_slot()) return &s.partition;
  return nullptr;
}

extern "C" esp_err_t esp_ota_get_state_partition(const esp_partition_t* partition, esp_ota_img_states_t* ota_state) {
  auto& c = chip();
  std::lock_guard lock(c.mu);
  const Slot* s = otter_emu::detail::slot_of(partition);
  if (s == nullptr || ota_state == nullptr) return ESP_ERR_INVALID_ARG;
  if (s->seq == 0) return ESP_ERR_NOT_FOUND;  // not in otadata
  *ota_state = s->state;
  return ESP_OK;
}

extern "C" esp_err_t esp_ota_mark_app_valid_cancel_rollback(void) {
  auto& c = chip();
  std::lock_guard lock(c.mu);
  Slot* r = running_slot();
  if (r == nullptr) return ESP_ERR_INVALID_STATE;
  if (r->state == ESP_OTA_IMG_PENDING_VERIFY) {
    r->state = ESP_OTA_IMG_VALID;
    otter_emu::detail::save_otadata();
  }
  return ESP_OK;
}

extern "C" bool esp_ota_check_rollback_is_possible(void) {
  auto& c = chip();
  std::lock_guard lock(c.mu);
  for (const auto& s : c.slots)
    if (&s != running_slot() && bootable(s) && s.state != ESP_OTA_IMG_NEW && s.state != ESP_OTA_IMG_PENDING_VERIFY)
      return true;
  return false;
}

extern "C" esp_err_t esp_ota_mark_app_invalid_rollback_and_reboot(void) {
  {
    auto& c = chip();
    std::lock_guard lock(c.mu);
    Slot* r = running_slot();
    if (r == nullptr) return ESP_ERR_INVALID_STATE;
    if (!esp_ota_check_rollback_is_possible()) return ESP_ERR_OTA_ROLLBACK_FAILED;
    r->state = ESP_OTA_IMG_INVALID;
    otter_emu::detail::save_otadata();
  }
  esp_restart();
}
