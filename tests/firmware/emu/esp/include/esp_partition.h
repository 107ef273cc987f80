// Host emulation of ESP-IDF's esp_partition.h over files: the app partitions ota_0 and ota_1 are files in
// DATA/flash/ (created by otter_emu::power_on). Flash semantics are kept: erase sets bytes to 0xFF (in 4096-byte
// sectors), write can only clear bits (the result is old & new, as NOR flash does).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"

#define SPI_FLASH_SEC_SIZE 4096

typedef enum {
  ESP_PARTITION_TYPE_APP = 0x00,
  ESP_PARTITION_TYPE_DATA = 0x01,
  ESP_PARTITION_TYPE_ANY = 0xff,
} esp_partition_type_t;

typedef enum {
  ESP_PARTITION_SUBTYPE_APP_FACTORY = 0x00,
  ESP_PARTITION_SUBTYPE_APP_OTA_MIN = 0x10,
  ESP_PARTITION_SUBTYPE_APP_OTA_0 = 0x10,
  ESP_PARTITION_SUBTYPE_APP_OTA_1 = 0x11,
  ESP_PARTITION_SUBTYPE_DATA_OTA = 0x00,
  ESP_PARTITION_SUBTYPE_ANY = 0xff,
} esp_partition_subtype_t;

typedef struct {
  void* flash_chip;
  esp_partition_type_t type;
  esp_partition_subtype_t subtype;
  uint32_t address;
  uint32_t size;
  uint32_t erase_size;
  char label[17];
  bool encrypted;
  bool readonly;
} esp_partition_t;

#ifdef __cplusplus
extern "C" {
#endif

/// The first partition of this type/subtype (label NULL = any), or NULL.
const esp_partition_t* esp_partition_find_first(esp_partition_type_t type, esp_partition_subtype_t subtype,
                                                const char* label);
esp_err_t esp_partition_read(const esp_partition_t* partition, size_t src_offset, void* dst, size_t size);
esp_err_t esp_partition_write(const esp_partition_t* partition, size_t dst_offset, const void* src, size_t size);
/// offset and size must be multiples of SPI_FLASH_SEC_SIZE.
esp_err_t esp_partition_erase_range(const esp_partition_t* partition, size_t offset, size_t size);

#ifdef __cplusplus
}
#endif
