// Host emulation of ESP-IDF's examples/common_components/protocol_examples_common: the host is always connected
// (loopback); example_connect() only logs what it would have done.
#pragma once

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

esp_err_t example_connect(void);
esp_err_t example_disconnect(void);

#ifdef __cplusplus
}
#endif
