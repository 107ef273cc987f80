// Host build of the otter ESP-IDF example (build/bin/otter-idf-example-host): the one hook the example calls under
// #ifdef OTTER_HOST_EMULATION. On a chip the port comes from Kconfig and the base path is the LittleFS mount point;
// on the host they come from the command line (--port, --data: DATA/fs is the LittleFS partition), and the key
// reaches the component through the emulated NVS, which host_main provisions from --key-file before app_main.
#pragma once

#include "otter_ota.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Sets config->port, config->base_path (and config->auto_confirm_s with --auto-confirm) from the command line, and
/// chains config->event_cb with the host's LISTENING hook (which prints the "listening on" line the tests parse and
/// makes a restart come back on that port).
void otter_host_apply(otter_ota_config_t* config);

#ifdef __cplusplus
}
#endif
