// Host emulation of ESP-IDF's esp_log.h: "L (ms) tag: message" lines on stderr (stdout is kept for the lines tests
// parse).
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  ESP_LOG_NONE = 0,
  ESP_LOG_ERROR = 1,
  ESP_LOG_WARN = 2,
  ESP_LOG_INFO = 3,
  ESP_LOG_DEBUG = 4,
  ESP_LOG_VERBOSE = 5,
} esp_log_level_t;

/// Milliseconds since the (emulated) boot.
uint32_t esp_log_timestamp(void);
/// Writes one line: level letter, timestamp, tag, the formatted message. Thread-safe (one write per line).
void otter_emu_log(esp_log_level_t level, const char* tag, const char* format, ...)
    __attribute__((format(printf, 3, 4)));
void esp_log_level_set(const char* tag, esp_log_level_t level);

#ifdef __cplusplus
}
#endif

#define ESP_LOGE(tag, ...) otter_emu_log(ESP_LOG_ERROR, tag, __VA_ARGS__)
#define ESP_LOGW(tag, ...) otter_emu_log(ESP_LOG_WARN, tag, __VA_ARGS__)
#define ESP_LOGI(tag, ...) otter_emu_log(ESP_LOG_INFO, tag, __VA_ARGS__)
#define ESP_LOGD(tag, ...) otter_emu_log(ESP_LOG_DEBUG, tag, __VA_ARGS__)
#define ESP_LOGV(tag, ...) otter_emu_log(ESP_LOG_VERBOSE, tag, __VA_ARGS__)
