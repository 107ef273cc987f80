// Host emulation of ESP-IDF's app_update API (esp_ota_ops.h) over the file-backed flash of esp_partition.h, with
// CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE behaviour: a new image boots PENDING_VERIFY and rolls back on the next
// power-on unless the app marks it valid (the bootloader part is otter_emu::power_on).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "esp_partition.h"

#define OTA_SIZE_UNKNOWN 0xffffffff
#define OTA_WITH_SEQUENTIAL_WRITES 0xfffffffe

typedef uint32_t esp_ota_handle_t;

typedef enum {
  ESP_OTA_IMG_NEW = 0x0U,
  ESP_OTA_IMG_PENDING_VERIFY = 0x1U,
  ESP_OTA_IMG_VALID = 0x2U,
  ESP_OTA_IMG_INVALID = 0x3U,
  ESP_OTA_IMG_ABORTED = 0x4U,
  ESP_OTA_IMG_UNDEFINED = 0xFFFFFFFFU,
} esp_ota_img_states_t;

#ifdef __cplusplus
extern "C" {
#endif

/// Erases the partition (all of it for OTA_SIZE_UNKNOWN, else the sectors covering image_size; none for
/// OTA_WITH_SEQUENTIAL_WRITES) and opens a write handle. ESP_ERR_OTA_PARTITION_CONFLICT for the running partition.
esp_err_t esp_ota_begin(const esp_partition_t* partition, size_t image_size, esp_ota_handle_t* out_handle);
/// Appends to the image (sequential). ESP_ERR_OTA_VALIDATE_FAILED if the first byte is not ESP_IMAGE_HEADER_MAGIC.
esp_err_t esp_ota_write(esp_ota_handle_t handle, const void* data, size_t size);
/// Closes the handle and validates the image (magic byte; at least one byte written): ESP_ERR_OTA_VALIDATE_FAILED.
esp_err_t esp_ota_end(esp_ota_handle_t handle);
esp_err_t esp_ota_abort(esp_ota_handle_t handle);
/// Validates the image in `partition` and makes it the next boot partition with state NEW.
esp_err_t esp_ota_set_boot_partition(const esp_partition_t* partition);
const esp_partition_t* esp_ota_get_boot_partition(void);
const esp_partition_t* esp_ota_get_running_partition(void);
/// The OTA app partition after start_from (NULL = the running one), skipping the running partition.
const esp_partition_t* esp_ota_get_next_update_partition(const esp_partition_t* start_from);
esp_err_t esp_ota_get_state_partition(const esp_partition_t* partition, esp_ota_img_states_t* ota_state);
/// Running image PENDING_VERIFY -> VALID (no-op if already valid).
esp_err_t esp_ota_mark_app_valid_cancel_rollback(void);
/// Running image -> INVALID, then esp_restart() into the previous valid image. Returns only on error.
esp_err_t esp_ota_mark_app_invalid_rollback_and_reboot(void);
/// True if another partition holds a valid image to roll back to.
bool esp_ota_check_rollback_is_possible(void);

#ifdef __cplusplus
}
#endif
