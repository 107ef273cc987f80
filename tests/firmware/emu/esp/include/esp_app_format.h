// Host emulation of ESP-IDF's esp_app_format.h: only the image magic (the first byte of every app image).
#pragma once

#define ESP_IMAGE_HEADER_MAGIC 0xE9
