// otter ESP-IDF component — the StoragePort: kind `file` through the VFS, kind `firmware` through app_update.
//
// Files (under the base path, e.g. /littlefs):
//   BASE/<name>                      committed files (the only place targets appear)
//   BASE/.otter/part/<K>.part        partial copy of a running or interrupted transfer, K = 16 hex digits of the
//                                    FNV-1a 64 hash of the name (short: LittleFS names are limited to 64 bytes)
//   BASE/.otter/part/<K>.meta        "size sha256hex\n" of that partial copy
// begin() resumes only an exact (size, sha256) match (a hash collision between two names is harmless: the held bytes
// are then a prefix of the same content, and the core checks the SHA-256 before commit); commit = fsync, mkdir -p
// the parents, rename(part, target). LittleFS renames atomically over an existing target; a VFS whose rename refuses
// an existing target (FAT) gets unlink + rename (not atomic: documented in the README).
//
// Firmware: begin() = esp_ota_get_next_update_partition + esp_ota_begin(image size: the sectors are erased up front),
// write() = esp_ota_write (the first byte must be the 0xE9 image magic), commit() (after the core verified the
// SHA-256) = esp_ota_end + esp_ota_set_boot_partition. No resume: suspend() and discard() both esp_ota_abort, and
// begin() always answers offset 0. While a firmware transfer is open, free_space() is the partition's size.
#pragma once

#include <cstddef>
#include <cstdint>

#include "esp_ota_ops.h"
#include "otter/core/codec.hpp"
#include "otter/core/ports.hpp"

namespace otter::esp {

/// Free bytes of the file system (nullptr = unknown).
using FreeSpaceFn = std::uint64_t (*)(void* ctx);

class EspStorage final : public core::StoragePort {
 public:
  static constexpr std::size_t kMaxBasePath = 64;
  static constexpr std::size_t kMaxPath = kMaxBasePath + 1 + core::kMaxNameLen + 1;

  /// `base_path` empty = no file storage (kind `file` refused with UNSUPPORTED_KIND).
  EspStorage(const char* base_path, FreeSpaceFn free_space_fn, void* free_space_ctx);
  ~EspStorage();  ///< suspends an open transfer
  EspStorage(const EspStorage&) = delete;
  EspStorage& operator=(const EspStorage&) = delete;

  std::uint64_t free_space() override;
  core::Result<std::uint64_t> begin(core::ByteView name, core::Kind kind, std::uint64_t size,
                                    const std::uint8_t sha256[core::kHashSize], core::Sha256& hasher) override;
  core::Result<void> write(const std::uint8_t* data, std::size_t n) override;
  core::Result<void> commit() override;
  void suspend() override;
  void discard() override;
  core::Result<core::FileStat> stat(core::ByteView name, core::Sha256& hasher) override;

 private:
  core::Result<std::uint64_t> begin_file(core::ByteView name, std::uint64_t size,
                                         const std::uint8_t sha256[core::kHashSize], core::Sha256& hasher);
  core::Result<std::uint64_t> begin_firmware(std::uint64_t size);
  core::Result<void> commit_file();
  core::Result<void> commit_firmware();
  /// BASE + "/" + rel into out; false if it does not fit.
  bool make_path(char* out, const char* rel) const;
  bool make_part_paths();
  void close_file();
  void abort_firmware();

  char base_[kMaxBasePath + 1] = {};
  FreeSpaceFn free_space_fn_;
  void* free_space_ctx_;

  enum class Open : std::uint8_t { none, file, firmware };
  Open open_ = Open::none;
  std::uint64_t size_ = 0;
  std::uint64_t written_ = 0;

  // kind file
  int fd_ = -1;
  char name_[core::kMaxNameLen + 1] = {};
  char part_path_[kMaxPath] = {};
  char meta_path_[kMaxPath] = {};

  // kind firmware
  const esp_partition_t* partition_ = nullptr;
  esp_ota_handle_t ota_ = 0;
};

}  // namespace otter::esp
