// otter — OTA updates over the otter protocol v1 for ESP-IDF apps (files through the VFS, firmware through
// app_update with rollback). C API; the implementation is C++17 on the portable otter core.
//
//   otter_ota_config_t cfg = OTTER_OTA_CONFIG_DEFAULT();   // port, key source, paths... from Kconfig
//   cfg.event_cb = on_otter_event;                          // optional
//   ESP_ERROR_CHECK(otter_ota_start(&cfg));                  // binds, then serves from its own FreeRTOS task
//   ...
//   if (otter_ota_get_fw_state() == OTTER_OTA_FW_PENDING_VERIFY && self_test_ok()) otter_ota_confirm();
//
// One session is served at a time; a second connection meanwhile is answered ERROR BUSY and closed. Call start / stop
// from one task (they are not thread-safe against each other); confirm / rollback / get_* may be called from any
// task.
#pragma once

// A C header (ESP-IDF apps are often C): C headers and typedefs on purpose.
// NOLINTBEGIN(modernize-deprecated-headers,modernize-use-using)
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "sdkconfig.h"

#ifdef __cplusplus
extern "C" {
#endif

/// What was pushed (protocol `kind`).
typedef enum {
  OTTER_OTA_KIND_FILE = 0,      ///< a file under the configured base path (VFS), temp + rename, resumable
  OTTER_OTA_KIND_FIRMWARE = 1,  ///< an app image for the next OTA partition (esp_ota_*), not resumable
} otter_ota_kind_t;

/// State of the running firmware image, as the pusher sees it in the device's HELLO.
typedef enum {
  OTTER_OTA_FW_UNKNOWN = 0,         ///< no OTA data (e.g. a factory app), or the state cannot be read
  OTTER_OTA_FW_VALID = 1,           ///< confirmed (or rollback is not enabled)
  OTTER_OTA_FW_PENDING_VERIFY = 2,  ///< first boot of a new image, not confirmed: a reset rolls back
} otter_ota_fw_state_t;

typedef enum {
  OTTER_OTA_EVENT_LISTENING = 0,  ///< the server is listening (port, device_id)
  OTTER_OTA_EVENT_START = 1,      ///< a transfer was accepted (name, kind, size, received = resume offset)
  OTTER_OTA_EVENT_PROGRESS = 2,   ///< bytes received (about every 1/64 of the size, at least every 16 KiB)
  OTTER_OTA_EVENT_END = 3,        ///< committed: the file is in place / the new image is the boot partition
  OTTER_OTA_EVENT_ERROR = 4,      ///< the session ended with an error (error, error_name, message)
} otter_ota_event_id_t;

typedef struct {
  otter_ota_event_id_t id;
  otter_ota_kind_t kind;
  const char* name;        ///< target name (START, PROGRESS, END, ERROR during a transfer); else ""
  uint64_t size;           ///< announced size (START, PROGRESS, END)
  uint64_t received;       ///< bytes held so far (START: the resume offset)
  bool reboot;             ///< END: the device restarts once the result has been sent
  int error;               ///< ERROR: otter error code (docs/errors.md), e.g. 5 = HASH_MISMATCH
  const char* error_name;  ///< ERROR: e.g. "HASH_MISMATCH"
  const char* message;     ///< ERROR: human-readable detail
  uint16_t port;           ///< LISTENING: the bound TCP port
  const char* device_id;   ///< LISTENING: the id sent in HELLO
} otter_ota_event_t;

/// Called from the otter task; must not block for long and must not call otter_ota_stop().
typedef void (*otter_ota_event_cb_t)(const otter_ota_event_t* event, void* user_ctx);
/// Free bytes on the file system that holds base_path (e.g. from esp_littlefs_info). NULL = unknown (not checked
/// before a push; a full file system then fails the push with NO_SPACE when a write fails).
typedef uint64_t (*otter_ota_free_space_cb_t)(void* user_ctx);

typedef struct {
  uint16_t port;             ///< TCP port (0 = any free port; see otter_ota_get_port())
  const uint8_t* key;        ///< pre-shared key (>= 16 bytes); NULL = load it from the Kconfig key source
  size_t key_len;            ///< bytes of key (with key != NULL)
  const char* device_id;     ///< 1..64 printable ASCII; NULL = CONFIG_OTTER_DEVICE_ID, or "esp32-" + Wi-Fi MAC
  const char* base_path;     ///< VFS directory that receives files (e.g. "/littlefs"); NULL = no kind `file`
  bool accept_firmware;      ///< advertise and accept kind `firmware` (needs two OTA app partitions)
  uint32_t buffer_size;      ///< receive buffer, bytes (>= 512)
  uint32_t window;           ///< bytes in flight the pusher may send before an ACK (>= 1024)
  uint32_t idle_timeout_ms;  ///< a silent peer is dropped after this long
  uint64_t max_size;         ///< largest accepted artifact, 0 = no limit beyond free space / partition size
  uint32_t task_stack_size;  ///< bytes
  uint32_t task_priority;    ///< FreeRTOS priority of the otter task
  uint32_t auto_confirm_s;   ///< confirm a PENDING_VERIFY image after this many seconds of uptime; 0 = never
  otter_ota_event_cb_t event_cb;
  void* event_ctx;
  otter_ota_free_space_cb_t free_space_cb;
  void* free_space_ctx;
} otter_ota_config_t;

#ifdef CONFIG_OTTER_ACCEPT_FIRMWARE
#define OTTER_OTA_ACCEPT_FIRMWARE_DEFAULT true
#else
#define OTTER_OTA_ACCEPT_FIRMWARE_DEFAULT false
#endif

/// Defaults from Kconfig (menuconfig -> Component config -> otter OTA).
// clang-format off
#define OTTER_OTA_CONFIG_DEFAULT()                          \
  {                                                         \
    .port = CONFIG_OTTER_PORT,                              \
    .key = NULL,                                            \
    .key_len = 0,                                           \
    .device_id = NULL,                                      \
    .base_path = CONFIG_OTTER_BASE_PATH,                    \
    .accept_firmware = OTTER_OTA_ACCEPT_FIRMWARE_DEFAULT,   \
    .buffer_size = CONFIG_OTTER_BUFFER_SIZE,                \
    .window = CONFIG_OTTER_WINDOW,                          \
    .idle_timeout_ms = CONFIG_OTTER_IDLE_TIMEOUT_MS,        \
    .max_size = 0,                                          \
    .task_stack_size = CONFIG_OTTER_TASK_STACK_SIZE,        \
    .task_priority = CONFIG_OTTER_TASK_PRIORITY,            \
    .auto_confirm_s = CONFIG_OTTER_AUTO_CONFIRM_S,          \
    .event_cb = NULL,                                       \
    .event_ctx = NULL,                                      \
    .free_space_cb = NULL,                                  \
    .free_space_ctx = NULL,                                 \
  }
// clang-format on

/**
 * @brief Starts the otter server: loads the key, binds and listens on the port, then serves from a new FreeRTOS task.
 *
 * The config (and the strings and key it points to) is copied; it need not outlive the call.
 *
 * @return
 *   - ESP_OK: listening (the LISTENING event has been delivered)
 *   - ESP_ERR_INVALID_ARG: config is NULL, the key is shorter than 16 or longer than 128 bytes, the device id is not
 *     1..64 printable ASCII, base_path is longer than 64 bytes, neither files nor firmware are accepted, or a size is
 *     below its minimum
 *   - ESP_ERR_NOT_FOUND: key is NULL and the Kconfig key source holds no key (empty CONFIG_OTTER_KEY, missing key
 *     file, or no NVS entry)
 *   - ESP_ERR_INVALID_STATE: otter is already running
 *   - ESP_ERR_NO_MEM: the server state, buffer or task could not be allocated
 *   - ESP_FAIL: the socket could not be created, bound or put to listen (errno is logged)
 */
esp_err_t otter_ota_start(const otter_ota_config_t* config);

/**
 * @brief Stops the server: an open transfer is suspended (files keep their partial copy for resume; a firmware
 *        update is aborted), the socket is closed and the task ends. Blocks until then.
 *
 * @return
 *   - ESP_OK: stopped
 *   - ESP_ERR_INVALID_STATE: otter is not running, or called from the otter task (e.g. from the event callback)
 *   - ESP_ERR_TIMEOUT: the task did not end within idle_timeout_ms + 2 s (it is left running)
 */
esp_err_t otter_ota_stop(void);

/**
 * @brief Confirms the running image (esp_ota_mark_app_valid_cancel_rollback): it stays after the next reset.
 *        Call it once the new firmware has proven healthy. Idempotent; works whether or not otter is running.
 *
 * @return
 *   - ESP_OK: the running image is valid (it was PENDING_VERIFY and is now confirmed, or it already was valid / there
 *     is nothing to confirm)
 *   - other: the error of esp_ota_mark_app_valid_cancel_rollback()
 */
esp_err_t otter_ota_confirm(void);

/**
 * @brief Rejects the running image: esp_ota_mark_app_invalid_rollback_and_reboot(). Returns only on error.
 *
 * @return
 *   - ESP_ERR_OTA_ROLLBACK_FAILED: no other valid image to roll back to
 *   - other: the error of esp_ota_mark_app_invalid_rollback_and_reboot()
 */
esp_err_t otter_ota_rollback(void);

/// @brief State of the running image (what the HELLO of the next session reports). Never fails.
otter_ota_fw_state_t otter_ota_get_fw_state(void);

/// @brief The bound TCP port, or 0 when otter is not running.
uint16_t otter_ota_get_port(void);

#ifdef __cplusplus
}
#endif
// NOLINTEND(modernize-deprecated-headers,modernize-use-using)
