// otter test emulation — esp_err_to_name for the codes the emulation and the firmware use.
#include "esp_err.h"

extern "C" const char* esp_err_to_name(esp_err_t code) {
  switch (code) {
    case ESP_OK:
      return "ESP_OK";
    case ESP_FAIL:
      return "ESP_FAIL";
    case ESP_ERR_NO_MEM:
      return "ESP_ERR_NO_MEM";
    case ESP_ERR_INVALID_ARG:
      return "ESP_ERR_INVALID_ARG";
    case ESP_ERR_INVALID_STATE:
      return "ESP_ERR_INVALID_STATE";
    case ESP_ERR_INVALID_SIZE:
      return "ESP_ERR_INVALID_SIZE";
    case ESP_ERR_NOT_FOUND:
      return "ESP_ERR_NOT_FOUND";
    case ESP_ERR_NOT_SUPPORTED:
      return "ESP_ERR_NOT_SUPPORTED";
    case ESP_ERR_TIMEOUT:
      return "ESP_ERR_TIMEOUT";
    case ESP_ERR_OTA_PARTITION_CONFLICT:
      return "ESP_ERR_OTA_PARTITION_CONFLICT";
    case ESP_ERR_OTA_SELECT_INFO_INVALID:
      return "ESP_ERR_OTA_SELECT_INFO_INVALID";
    case ESP_ERR_OTA_VALIDATE_FAILED:
      return "ESP_ERR_OTA_VALIDATE_FAILED";
    case ESP_ERR_OTA_SMALL_SEC_VER:
      return "ESP_ERR_OTA_SMALL_SEC_VER";
    case ESP_ERR_OTA_ROLLBACK_FAILED:
      return "ESP_ERR_OTA_ROLLBACK_FAILED";
    case ESP_ERR_OTA_ROLLBACK_INVALID_STATE:
      return "ESP_ERR_OTA_ROLLBACK_INVALID_STATE";
    default:
      return "UNKNOWN ERROR";
  }
}
