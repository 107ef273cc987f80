// Host build of the otter ESP-IDF component and its example: the sdkconfig.h that `idf.py build` would generate from
// the component's Kconfig defaults plus examples/basic/sdkconfig.defaults (the options the sources read).
#pragma once

#define CONFIG_IDF_TARGET "esp32"
#define CONFIG_IDF_TARGET_ESP32 1
#define CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE 1
#define CONFIG_PARTITION_TABLE_CUSTOM 1

// Component config -> otter OTA
#define CONFIG_OTTER_PORT 12345
#define CONFIG_OTTER_KEY_SOURCE_NVS 1
#define CONFIG_OTTER_NVS_NAMESPACE "otter"
#define CONFIG_OTTER_NVS_KEY "key"
#define CONFIG_OTTER_DEVICE_ID ""
#define CONFIG_OTTER_BASE_PATH "/littlefs"
#define CONFIG_OTTER_ACCEPT_FIRMWARE 1
#define CONFIG_OTTER_BUFFER_SIZE 4096
#define CONFIG_OTTER_WINDOW 16384
#define CONFIG_OTTER_IDLE_TIMEOUT_MS 30000
#define CONFIG_OTTER_TASK_STACK_SIZE 8192
#define CONFIG_OTTER_TASK_PRIORITY 5
#define CONFIG_OTTER_AUTO_CONFIRM_S 0

// Example configuration (examples/basic/main/Kconfig.projbuild)
#define CONFIG_EXAMPLE_FS_PARTITION_LABEL "storage"
#define CONFIG_EXAMPLE_SELF_TEST_HOOKS 1
#define CONFIG_EXAMPLE_MIN_FREE_HEAP 32768
