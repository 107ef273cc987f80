// Host emulation of ESP-IDF's esp_heap_caps.h: only the free-size query (a fixed figure of a typical ESP32 app with
// Wi-Fi up; the host's heap says nothing about the chip's).
#pragma once

#include <stddef.h>
#include <stdint.h>

#define MALLOC_CAP_DEFAULT (1 << 12)
#define MALLOC_CAP_8BIT (1 << 2)

#ifdef __cplusplus
extern "C" {
#endif

size_t heap_caps_get_free_size(uint32_t caps);

#ifdef __cplusplus
}
#endif
