// Host emulation: the Update library (see Update.h), written from the documented behaviour of arduino-esp32's
// Updater.cpp over the shared esp_partition_* / esp_ota_* emulation.
#include <cstring>
#include <new>

#include "Update.h"
#include "esp_app_format.h"
#include "esp_ota_ops.h"

namespace {

const char* error_text(uint8_t e) {
  switch (e) {
    case UPDATE_ERROR_OK:
      return "No Error";
    case UPDATE_ERROR_WRITE:
      return "Flash Write Failed";
    case UPDATE_ERROR_ERASE:
      return "Flash Erase Failed";
    case UPDATE_ERROR_READ:
      return "Flash Read Failed";
    case UPDATE_ERROR_SPACE:
      return "Not Enough Space";
    case UPDATE_ERROR_SIZE:
      return "Bad Size Given";
    case UPDATE_ERROR_STREAM:
      return "Stream Read Timeout";
    case UPDATE_ERROR_MD5:
      return "MD5 Check Failed";
    case UPDATE_ERROR_MAGIC_BYTE:
      return "Wrong Magic Byte";
    case UPDATE_ERROR_ACTIVATE:
      return "Could Not Activate The Firmware";
    case UPDATE_ERROR_NO_PARTITION:
      return "Partition Could Not be Found";
    case UPDATE_ERROR_BAD_ARGUMENT:
      return "Bad Argument";
    case UPDATE_ERROR_ABORT:
      return "Aborted";
    default:
      return "UNKNOWN";
  }
}

bool bootable(const esp_partition_t* p) {
  uint8_t b = 0;
  return p != nullptr && esp_partition_read(p, 0, &b, 1) == ESP_OK && b == ESP_IMAGE_HEADER_MAGIC;
}

}  // namespace

UpdateClass::~UpdateClass() { reset(); }

UpdateClass& UpdateClass::onProgress(THandlerFunction_Progress fn) {
  progress_callback_ = std::move(fn);
  return *this;
}

void UpdateClass::reset() {
  delete[] buffer_;
  buffer_ = nullptr;
  buffer_len_ = 0;
  have_skip_ = false;
  progress_ = 0;
  size_ = 0;
}

void UpdateClass::fail(uint8_t err) {
  reset();
  error_ = err;
}

void UpdateClass::abort() { fail(UPDATE_ERROR_ABORT); }

bool UpdateClass::begin(size_t size, int command, int ledPin, uint8_t ledOn, const char* label) {
  (void)ledPin;
  (void)ledOn;
  (void)label;
  if (size_ > 0) return false;  // already running
  reset();
  error_ = UPDATE_ERROR_OK;
  if (size == 0) {
    error_ = UPDATE_ERROR_SIZE;
    return false;
  }
  if (command != U_FLASH) {
    error_ = UPDATE_ERROR_BAD_ARGUMENT;
    return false;
  }
  partition_ = esp_ota_get_next_update_partition(nullptr);
  if (partition_ == nullptr) {
    error_ = UPDATE_ERROR_NO_PARTITION;
    return false;
  }
  if (size == UPDATE_SIZE_UNKNOWN) {
    size = partition_->size;
  } else if (size > partition_->size) {
    error_ = UPDATE_ERROR_SIZE;
    return false;
  }
  buffer_ = new (std::nothrow) uint8_t[SPI_FLASH_SEC_SIZE];
  if (buffer_ == nullptr) return false;
  size_ = size;
  return true;
}

bool UpdateClass::write_buffer() {
  size_t skip = 0;
  if (progress_ == 0) {
    if (buffer_[0] != ESP_IMAGE_HEADER_MAGIC) {
      fail(UPDATE_ERROR_MAGIC_BYTE);
      return false;
    }
    // Hold back the image's first bytes: written last (end()), so a partial image is never bootable.
    skip = ENCRYPTED_BLOCK_SIZE < buffer_len_ ? ENCRYPTED_BLOCK_SIZE : buffer_len_;
    std::memcpy(skip_, buffer_, skip);
    have_skip_ = true;
  }
  if (progress_ == 0 && progress_callback_) progress_callback_(0, size_);
  // Erase just ahead of the write: a whole 64 KiB block at a block boundary when a whole block remains, single
  // sectors in the image's tail.
  const size_t offset = partition_->address + progress_;
  const bool block_erase = size_ - progress_ >= SPI_FLASH_BLOCK_SIZE && offset % SPI_FLASH_BLOCK_SIZE == 0;
  const bool tail = offset >= (partition_->address + size_) / SPI_FLASH_BLOCK_SIZE * SPI_FLASH_BLOCK_SIZE;
  if (block_erase || tail) {
    const size_t len = block_erase ? SPI_FLASH_BLOCK_SIZE : SPI_FLASH_SEC_SIZE;
    if (esp_partition_erase_range(partition_, progress_, len) != ESP_OK) {
      fail(UPDATE_ERROR_ERASE);
      return false;
    }
  }
  bool data = false;  // an all-0xFF sector needs no write after the erase
  for (size_t i = skip; i < buffer_len_ && !data; ++i) data = buffer_[i] != 0xFF;
  if (data && esp_partition_write(partition_, progress_ + skip, buffer_ + skip, buffer_len_ - skip) != ESP_OK) {
    fail(UPDATE_ERROR_WRITE);
    return false;
  }
  progress_ += buffer_len_;
  buffer_len_ = 0;
  if (progress_callback_) progress_callback_(progress_, size_);
  return true;
}

size_t UpdateClass::write(uint8_t* data, size_t len) {
  if (hasError() || !isRunning()) return 0;
  if (len > remaining()) {
    fail(UPDATE_ERROR_SPACE);
    return 0;
  }
  size_t left = len;
  while (buffer_len_ + left > SPI_FLASH_SEC_SIZE) {
    const size_t take = SPI_FLASH_SEC_SIZE - buffer_len_;
    std::memcpy(buffer_ + buffer_len_, data + (len - left), take);
    buffer_len_ += take;
    if (!write_buffer()) return len - left;
    left -= take;
  }
  std::memcpy(buffer_ + buffer_len_, data + (len - left), left);
  buffer_len_ += left;
  if (buffer_len_ == remaining()) {
    if (!write_buffer()) return len - left;
  }
  return len;
}

bool UpdateClass::enable_partition() {
  return have_skip_ && esp_partition_write(partition_, 0, skip_, ENCRYPTED_BLOCK_SIZE) == ESP_OK;
}

bool UpdateClass::end(bool evenIfRemaining) {
  if (hasError() || size_ == 0) return false;
  if (!isFinished() && !evenIfRemaining) {
    fail(UPDATE_ERROR_ABORT);
    return false;
  }
  if (evenIfRemaining) {
    if (buffer_len_ > 0) write_buffer();
    size_ = progress_;
  }
  if (!enable_partition() || !bootable(partition_)) {
    fail(UPDATE_ERROR_READ);
    return false;
  }
  if (esp_ota_set_boot_partition(partition_) != ESP_OK) {
    fail(UPDATE_ERROR_ACTIVATE);
    return false;
  }
  reset();
  return true;
}

void UpdateClass::printError(Print& out) { out.println(error_text(error_)); }

const char* UpdateClass::errorString() { return error_text(error_); }

bool UpdateClass::canRollBack() {
  if (buffer_ != nullptr) return false;
  return bootable(esp_ota_get_next_update_partition(nullptr));
}

bool UpdateClass::rollBack() {
  if (buffer_ != nullptr) return false;
  const esp_partition_t* p = esp_ota_get_next_update_partition(nullptr);
  return bootable(p) && esp_ota_set_boot_partition(p) == ESP_OK;
}

UpdateClass Update;
