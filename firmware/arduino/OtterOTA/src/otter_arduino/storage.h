// OtterOTA — the device's StoragePort: files on an Arduino fs::FS (LittleFS), firmware through the Update library.
//
// Files: the transfer is written to a partial copy /.otter/part/<K>.part (K = 32 hex digits of the SHA-256 of the
// name: fixed length, within LittleFS's 64-byte name limit) next to /.otter/part/<K>.meta ("size sha256hex\n").
// commit() flushes and closes the partial copy, creates the missing parent directories and renames it over the
// target: LittleFS's rename replaces an existing file atomically, so the target is either the old file or the whole
// new one. An interrupted transfer is flushed and kept; a later PUSH of the same (name, size, sha256) resumes from
// the bytes it holds (re-hashed at begin). Name components longer than 63 bytes, a parent that is a file and a
// target that is a directory are refused with BAD_NAME before any data flows.
//
// Firmware: Update.begin(size, U_FLASH) into the next OTA partition, Update.write() per DATA chunk, Update.end(true)
// at commit (after the core has verified the SHA-256: only then does the image get its first bytes and become the
// boot partition), Update.abort() on any failure or interruption. No resume: begin() always returns 0.
#pragma once

#include <FS.h>

#include <cstddef>
#include <cstdint>

#include "otter/core/codec.hpp"
#include "otter/core/ports.hpp"

namespace otter_arduino {

/// Free bytes of the file system.
using FreeSpaceFn = uint64_t (*)();

class DeviceStorage final : public otter::core::StoragePort {
 public:
  DeviceStorage(fs::FS& fs, FreeSpaceFn free_bytes);
  ~DeviceStorage();  ///< suspends an open transfer
  DeviceStorage(const DeviceStorage&) = delete;
  DeviceStorage& operator=(const DeviceStorage&) = delete;

  std::uint64_t free_space() override;
  otter::core::Result<std::uint64_t> begin(otter::core::ByteView name, otter::core::Kind kind, std::uint64_t size,
                                           const std::uint8_t sha256[otter::core::kHashSize],
                                           otter::core::Sha256& hasher) override;
  otter::core::Result<void> write(const std::uint8_t* data, std::size_t n) override;
  otter::core::Result<void> commit() override;
  void suspend() override;
  void discard() override;
  otter::core::Result<otter::core::FileStat> stat(otter::core::ByteView name, otter::core::Sha256& hasher) override;

  static constexpr std::size_t kMaxComponent = 63;

 private:
  enum class Mode : std::uint8_t { none, file, firmware };

  otter::core::Result<std::uint64_t> begin_file(std::uint64_t size, const std::uint8_t sha256[],
                                                otter::core::Sha256& hasher);
  otter::core::Result<std::uint64_t> begin_firmware(std::uint64_t size);
  otter::core::Error update_error(const char* what);
  void close_transfer();

  fs::FS& fs_;
  FreeSpaceFn free_bytes_;
  Mode mode_ = Mode::none;
  fs::File file_;
  std::uint64_t size_ = 0;
  std::uint64_t written_ = 0;
  char target_[otter::core::kMaxNameLen + 2] = {};  // "/" + name
  char part_[56] = {};
  char meta_[56] = {};
  char msg_[96] = {};  // an error message composed for the core (valid until the next call)
};

}  // namespace otter_arduino
