// Host emulation of ESP-IDF's esp_mac.h: a fixed base MAC (24:0a:c4:00:1d:01); interfaces add their offset as on the
// chip (STA +0, AP +1, BT +2, ETH +3).
#pragma once

#include <stdint.h>

#include "esp_err.h"

typedef enum {
  ESP_MAC_WIFI_STA = 0,
  ESP_MAC_WIFI_SOFTAP = 1,
  ESP_MAC_BT = 2,
  ESP_MAC_ETH = 3,
} esp_mac_type_t;

#ifdef __cplusplus
extern "C" {
#endif

esp_err_t esp_read_mac(uint8_t* mac, esp_mac_type_t type);

#ifdef __cplusplus
}
#endif
