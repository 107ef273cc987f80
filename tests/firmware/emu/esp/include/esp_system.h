// Host emulation of ESP-IDF's esp_system.h: esp_restart() runs the handler set with otter_emu::set_restart_handler
// (the host programs re-execute themselves: an emulated reboot keeps the command line and the data directory).
#pragma once

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

__attribute__((noreturn)) void esp_restart(void);

#ifdef __cplusplus
}
#endif
