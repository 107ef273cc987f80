// Host emulation of ESP-IDF's esp_timer.h: the time since boot (this process's start; an emulated restart re-executes
// the program, so uptime starts again from zero as on the chip).
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Microseconds since boot (monotonic).
int64_t esp_timer_get_time(void);

#ifdef __cplusplus
}
#endif
