// Host emulation of ESP-IDF's esp_event.h: only the default loop's creation (nothing posts to it on the host).
#pragma once

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/// ESP_ERR_INVALID_STATE if it exists already, as on the chip.
esp_err_t esp_event_loop_create_default(void);

#ifdef __cplusplus
}
#endif
