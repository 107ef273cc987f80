// Host emulation of the joltwallet/littlefs component's esp_littlefs.h: the "partition" is a host directory. The
// registered base_path must be a host path (the host glue passes DATA/fs); register creates it. Capacity is the
// emulated partition's size (OTTER_EMU_LITTLEFS_SIZE, 1.44 MiB as in the example's partition table), used = the bytes
// of the regular files below it.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "esp_partition.h"

#define OTTER_EMU_LITTLEFS_SIZE (0x170000)

typedef struct {
  const char* base_path;
  const char* partition_label;
  const esp_partition_t* partition;
  uint8_t format_if_mount_failed : 1;
  uint8_t read_only : 1;
  uint8_t dont_mount : 1;
  uint8_t grow_on_mount : 1;
} esp_vfs_littlefs_conf_t;

#ifdef __cplusplus
extern "C" {
#endif

esp_err_t esp_vfs_littlefs_register(const esp_vfs_littlefs_conf_t* conf);
esp_err_t esp_vfs_littlefs_unregister(const char* partition_label);
esp_err_t esp_littlefs_info(const char* partition_label, size_t* total_bytes, size_t* used_bytes);

#ifdef __cplusplus
}
#endif
