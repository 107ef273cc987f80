// Host emulation of ESP-IDF's esp_netif.h: the TCP/IP stack is the host's, always initialised.
#pragma once

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

esp_err_t esp_netif_init(void);

#ifdef __cplusplus
}
#endif
