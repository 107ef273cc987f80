// Host emulation of arduino-esp32's LittleFS library: a file system of a fixed capacity (default 0x160000 bytes, the
// "spiffs" data partition of the default two-OTA partition table) over the directory DATA/littlefs. Space is counted
// in 4096-byte blocks as LittleFS does (each file and directory takes whole blocks).
#pragma once

#include <stddef.h>

#include "FS.h"

namespace fs {

class LittleFSFS : public FS {
 public:
  LittleFSFS();
  bool begin(bool formatOnFail = false, const char* basePath = "/littlefs", uint8_t maxOpenFiles = 10,
             const char* partitionLabel = "spiffs");
  bool format();
  size_t totalBytes();
  size_t usedBytes();
  void end();
};

}  // namespace fs

extern fs::LittleFSFS LittleFS;
