// Host emulation of arduino-esp32's Update library (Updater.cpp), over the shared esp_partition_* / esp_ota_*
// emulation. It behaves as the real UpdateClass for U_FLASH:
//   - begin(size) picks esp_ota_get_next_update_partition(NULL); size 0 or larger than the partition -> "Bad Size
//     Given"; no partition -> "Partition Could Not be Found";
//   - write() buffers one 4096-byte flash sector; each full sector (and the last, partial one) is written to flash,
//     erasing 64 KiB blocks (sectors at the tail) just before; the first sector must start with the image magic 0xE9
//     ("Wrong Magic Byte", the update is aborted); its first 16 bytes are held back and written only by end(), so a
//     partial image never boots;
//   - end(true) writes the held-back bytes, checks the partition now starts with the magic ("Flash Read Failed")
//     and makes it the boot partition (esp_ota_set_boot_partition: "Could Not Activate The Firmware");
//   - abort() drops the update ("Aborted"); errors are reported by getError() / errorString() with the real codes
//     and texts.
// U_SPIFFS is not emulated (begin() fails with "Bad Argument").
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <functional>

#include "Arduino.h"
#include "esp_partition.h"

#define UPDATE_ERROR_OK (0)
#define UPDATE_ERROR_WRITE (1)
#define UPDATE_ERROR_ERASE (2)
#define UPDATE_ERROR_READ (3)
#define UPDATE_ERROR_SPACE (4)
#define UPDATE_ERROR_SIZE (5)
#define UPDATE_ERROR_STREAM (6)
#define UPDATE_ERROR_MD5 (7)
#define UPDATE_ERROR_MAGIC_BYTE (8)
#define UPDATE_ERROR_ACTIVATE (9)
#define UPDATE_ERROR_NO_PARTITION (10)
#define UPDATE_ERROR_BAD_ARGUMENT (11)
#define UPDATE_ERROR_ABORT (12)

#define UPDATE_SIZE_UNKNOWN 0xFFFFFFFF

#define U_FLASH 0
#define U_SPIFFS 100

#define ENCRYPTED_BLOCK_SIZE 16
#define SPI_SECTORS_PER_BLOCK 16
#define SPI_FLASH_BLOCK_SIZE (SPI_SECTORS_PER_BLOCK * SPI_FLASH_SEC_SIZE)

class UpdateClass {
 public:
  typedef std::function<void(size_t, size_t)> THandlerFunction_Progress;

  UpdateClass() = default;
  ~UpdateClass();
  UpdateClass(const UpdateClass&) = delete;
  UpdateClass& operator=(const UpdateClass&) = delete;

  UpdateClass& onProgress(THandlerFunction_Progress fn);
  bool begin(size_t size = UPDATE_SIZE_UNKNOWN, int command = U_FLASH, int ledPin = -1, uint8_t ledOn = LOW,
             const char* label = nullptr);
  size_t write(uint8_t* data, size_t len);
  bool end(bool evenIfRemaining = false);
  void abort();
  void printError(Print& out);
  const char* errorString();

  uint8_t getError() { return error_; }
  void clearError() { error_ = UPDATE_ERROR_OK; }
  bool hasError() { return error_ != UPDATE_ERROR_OK; }
  bool isRunning() { return size_ > 0; }
  bool isFinished() { return progress_ == size_; }
  size_t size() { return size_; }
  size_t progress() { return progress_; }
  size_t remaining() { return size_ - progress_; }
  bool canRollBack();
  bool rollBack();

 private:
  void reset();
  void fail(uint8_t err);
  bool write_buffer();
  bool enable_partition();

  uint8_t error_ = UPDATE_ERROR_OK;
  uint8_t* buffer_ = nullptr;  // one flash sector, allocated by begin() as the real one does
  size_t buffer_len_ = 0;
  uint8_t skip_[ENCRYPTED_BLOCK_SIZE] = {};
  bool have_skip_ = false;
  size_t size_ = 0;
  size_t progress_ = 0;
  const esp_partition_t* partition_ = nullptr;
  THandlerFunction_Progress progress_callback_;
};

extern UpdateClass Update;
