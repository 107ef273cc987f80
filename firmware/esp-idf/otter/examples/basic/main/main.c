// otter example: files to LittleFS and firmware to the next OTA slot over the otter protocol, with a
// self-test-then-confirm flow for new images.
//
// Boot: NVS (holds the device key), LittleFS at /littlefs, network (protocol_examples_common: Wi-Fi or Ethernet from
// menuconfig), otter. If the running image is new (PENDING_VERIFY), the self-test decides: pass ->
// otter_ota_confirm() (the image stays); fail -> otter_ota_rollback() (restart into the previous image); until it
// decides, a reset rolls back.
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "esp_event.h"
#include "esp_heap_caps.h"
#include "esp_littlefs.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "esp_ota_ops.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "nvs_flash.h"
#include "otter_ota.h"
#include "protocol_examples_common.h"
#include "sdkconfig.h"
#ifdef OTTER_HOST_EMULATION
#include "otter_host.h"
#endif

static const char* TAG = "otter-example";

static void on_otter_event(const otter_ota_event_t* e, void* ctx) {
  (void)ctx;
  switch (e->id) {
    case OTTER_OTA_EVENT_LISTENING:
      ESP_LOGI(TAG, "otter: device %s on port %u", e->device_id, (unsigned)e->port);
      break;
    case OTTER_OTA_EVENT_START:
      ESP_LOGI(TAG, "otter: receiving %s '%s' (%llu bytes, from %llu)",
               e->kind == OTTER_OTA_KIND_FIRMWARE ? "firmware" : "file", e->name, (unsigned long long)e->size,
               (unsigned long long)e->received);
      break;
    case OTTER_OTA_EVENT_PROGRESS:
      ESP_LOGD(TAG, "otter: %llu / %llu", (unsigned long long)e->received, (unsigned long long)e->size);
      break;
    case OTTER_OTA_EVENT_END:
      ESP_LOGI(TAG, "otter: '%s' committed%s", e->name, e->reboot ? ", restarting" : "");
      break;
    case OTTER_OTA_EVENT_ERROR:
      ESP_LOGW(TAG, "otter: %s (%d): %s", e->error_name, e->error, e->message);
      break;
  }
}

static uint64_t fs_free(void* ctx) {
  (void)ctx;
  size_t total = 0;
  size_t used = 0;
  if (esp_littlefs_info(CONFIG_EXAMPLE_FS_PARTITION_LABEL, &total, &used) != ESP_OK) return UINT64_MAX;
  return used < total ? (uint64_t)(total - used) : 0;
}

typedef enum { SELF_TEST_PASS, SELF_TEST_FAIL, SELF_TEST_HOLD } self_test_t;

#ifdef CONFIG_EXAMPLE_SELF_TEST_HOOKS
static bool file_exists(const char* base, const char* name) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", base, name);
  struct stat st;
  return stat(path, &st) == 0;
}
#endif

// What a new image must show before it is confirmed. Replace with your application's own checks (sensors answer,
// the cloud connection works, ...).
static self_test_t self_test(const char* base) {
  // 1. The file system works: write, read back and delete a probe.
  char path[128];
  snprintf(path, sizeof path, "%s/.selftest-probe", base);
  static const char kProbe[] = "otter self-test";
  FILE* f = fopen(path, "w");
  bool fs_ok = f != NULL && fwrite(kProbe, 1, sizeof kProbe, f) == sizeof kProbe;
  if (f != NULL) fs_ok = fclose(f) == 0 && fs_ok;
  char back[sizeof kProbe] = {0};
  f = fs_ok ? fopen(path, "r") : NULL;
  fs_ok = f != NULL && fread(back, 1, sizeof back, f) == sizeof back && memcmp(back, kProbe, sizeof kProbe) == 0;
  if (f != NULL) fclose(f);
  unlink(path);
  if (!fs_ok) {
    ESP_LOGE(TAG, "self-test: the file system does not work");
    return SELF_TEST_FAIL;
  }
  // 2. Enough heap left for the application.
  const size_t heap = heap_caps_get_free_size(MALLOC_CAP_DEFAULT);
  if (heap < CONFIG_EXAMPLE_MIN_FREE_HEAP) {
    ESP_LOGE(TAG, "self-test: only %u bytes of heap free", (unsigned)heap);
    return SELF_TEST_FAIL;
  }
#ifdef CONFIG_EXAMPLE_SELF_TEST_HOOKS
  // 3. Lab hooks to rehearse both outcomes: push (or create) BASE/selftest-fail or BASE/selftest-hold.
  if (file_exists(base, "selftest-fail")) {
    ESP_LOGE(TAG, "self-test: %s/selftest-fail is present", base);
    return SELF_TEST_FAIL;
  }
  if (file_exists(base, "selftest-hold")) return SELF_TEST_HOLD;
#endif
  return SELF_TEST_PASS;
}

static esp_err_t init_nvs(void) {
  esp_err_t err = nvs_flash_init();
  if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
    // NVS holds the device key: erasing it means re-provisioning. Say so loudly rather than erase silently.
    ESP_LOGE(TAG, "NVS partition needs erasing (%s): re-provision the device key", esp_err_to_name(err));
  }
  return err;
}

void app_main(void) {
  otter_ota_config_t cfg = OTTER_OTA_CONFIG_DEFAULT();
  cfg.event_cb = on_otter_event;
  cfg.free_space_cb = fs_free;
#ifdef OTTER_HOST_EMULATION
  otter_host_apply(&cfg);  // host build only: --port and the data directory (tests/firmware/esp-idf/host)
#endif

  esp_err_t err = init_nvs();
  if (err != ESP_OK) {
    ESP_LOGE(TAG, "nvs_flash_init: %s", esp_err_to_name(err));
    return;
  }
  const esp_vfs_littlefs_conf_t fs_conf = {
      .base_path = cfg.base_path,
      .partition_label = CONFIG_EXAMPLE_FS_PARTITION_LABEL,
      .format_if_mount_failed = true,
  };
  err = esp_vfs_littlefs_register(&fs_conf);
  if (err != ESP_OK) {
    ESP_LOGE(TAG, "cannot mount LittleFS at %s: %s", cfg.base_path, esp_err_to_name(err));
    return;
  }
  err = esp_netif_init();
  if (err == ESP_OK) err = esp_event_loop_create_default();
  if (err == ESP_OK) err = example_connect();
  if (err != ESP_OK) {
    ESP_LOGE(TAG, "network: %s", esp_err_to_name(err));
    return;
  }

  const esp_partition_t* running = esp_ota_get_running_partition();
  const bool pending = otter_ota_get_fw_state() == OTTER_OTA_FW_PENDING_VERIFY;
  ESP_LOGI(TAG, "running from %s (%s)", running != NULL ? running->label : "?",
           pending ? "new image, pending verification" : "confirmed image");

  err = otter_ota_start(&cfg);
  if (err != ESP_OK) {
    ESP_LOGE(TAG, "otter_ota_start: %s", esp_err_to_name(err));
    if (pending) otter_ota_rollback();  // a new image that cannot even serve updates is not healthy
    return;
  }
  if (!pending) return;

  bool said_hold = false;
  for (;;) {
    switch (self_test(cfg.base_path)) {
      case SELF_TEST_PASS:
        ESP_LOGI(TAG, "self-test passed: confirming the new image");
        otter_ota_confirm();
        return;
      case SELF_TEST_FAIL:
        ESP_LOGE(TAG, "self-test failed: rolling back");
        otter_ota_rollback();
        return;
      case SELF_TEST_HOLD:
        if (!said_hold) ESP_LOGW(TAG, "self-test on hold: the image stays unconfirmed; a reset rolls back");
        said_hold = true;
        vTaskDelay(pdMS_TO_TICKS(1000));
        break;
    }
  }
}
