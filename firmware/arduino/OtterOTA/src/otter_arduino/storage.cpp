#include "otter_arduino/storage.h"

#include <Update.h>
#include <esp_ota_ops.h>

#include <cstdio>
#include <cstring>

namespace otter_arduino {
namespace {

using otter::ErrorCode;
using otter::core::fail;
using otter::core::Result;

constexpr const char* kOtterDir = "/.otter";
constexpr const char* kPartDir = "/.otter/part";
constexpr std::size_t kChunk = 512;

void to_hex(const std::uint8_t* d, std::size_t n, char* out) {
  static const char kDigits[] = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[d[i] >> 4];
    out[2 * i + 1] = kDigits[d[i] & 0xF];
  }
  out[2 * n] = '\0';
}

/// Feeds the whole file into the hasher; false on a read error. `bytes` receives how many were read.
bool hash_file(fs::File& f, otter::core::Sha256& hasher, std::uint64_t& bytes) {
  std::uint8_t buf[kChunk];
  bytes = 0;
  const std::uint64_t total = f.size();
  while (bytes < total) {
    const std::size_t want = total - bytes < kChunk ? static_cast<std::size_t>(total - bytes) : kChunk;
    const std::size_t r = f.read(buf, want);
    if (r == 0) return false;
    hasher.update(buf, r);
    bytes += r;
  }
  return true;
}

}  // namespace

DeviceStorage::DeviceStorage(fs::FS& fs, FreeSpaceFn free_bytes) : fs_(fs), free_bytes_(free_bytes) {}

DeviceStorage::~DeviceStorage() { suspend(); }

std::uint64_t DeviceStorage::free_space() {
  if (mode_ == Mode::firmware) {
    const esp_partition_t* p = esp_ota_get_next_update_partition(nullptr);
    return p != nullptr ? p->size : 0;
  }
  return free_bytes_ != nullptr ? free_bytes_() : 0;
}

otter::core::Error DeviceStorage::update_error(const char* what) {
  std::snprintf(msg_, sizeof msg_, "%s: %s", what, Update.errorString());
  return {ErrorCode::storage, msg_};
}

void DeviceStorage::close_transfer() {
  if (file_) file_.close();
  mode_ = Mode::none;
  size_ = 0;
  written_ = 0;
}

Result<std::uint64_t> DeviceStorage::begin(otter::core::ByteView name, otter::core::Kind kind, std::uint64_t size,
                                           const std::uint8_t sha256[otter::core::kHashSize],
                                           otter::core::Sha256& hasher) {
  if (mode_ != Mode::none) suspend();
  if (kind == otter::core::Kind::firmware) return begin_firmware(size);

  // The name was validated by the core; check what LittleFS itself cannot hold.
  std::size_t seg = 0;
  for (std::size_t i = 0; i < name.size; ++i) {
    seg = name.data[i] == '/' ? 0 : seg + 1;
    if (seg > kMaxComponent) return fail(ErrorCode::bad_name, "a name component is longer than LittleFS allows (63)");
  }
  target_[0] = '/';
  std::memcpy(target_ + 1, name.data, name.size);
  target_[name.size + 1] = '\0';
  // Parents must be directories (or absent), the target a file (or absent).
  for (std::size_t i = 1; i <= name.size + 1; ++i) {
    if (target_[i] != '/' && target_[i] != '\0') continue;
    const char saved = target_[i];
    target_[i] = '\0';
    fs::File f = fs_.open(target_, FILE_READ);
    const bool exists = static_cast<bool>(f);
    const bool dir = exists && f.isDirectory();
    f.close();
    target_[i] = saved;
    if (saved == '/' && exists && !dir)
      return fail(ErrorCode::bad_name, "a parent of the name is a file on the device");
    if (saved == '\0' && dir) return fail(ErrorCode::bad_name, "the target is a directory on the device");
  }

  // The partial copy's key: the name's SHA-256, truncated (the hasher is reset again below).
  std::uint8_t digest[otter::core::kHashSize];
  hasher.update(name.data, name.size);
  hasher.finish(digest);
  hasher.reset();
  char key[33];
  to_hex(digest, 16, key);
  std::snprintf(part_, sizeof part_, "%s/%s.part", kPartDir, key);
  std::snprintf(meta_, sizeof meta_, "%s/%s.meta", kPartDir, key);
  return begin_file(size, sha256, hasher);
}

Result<std::uint64_t> DeviceStorage::begin_file(std::uint64_t size, const std::uint8_t sha256[],
                                                otter::core::Sha256& hasher) {
  if (!fs_.mkdir(kOtterDir) || !fs_.mkdir(kPartDir)) {
    return fail(ErrorCode::storage, "cannot create /.otter/part on the file system");
  }
  char sha_hex[2 * otter::core::kHashSize + 1];
  to_hex(sha256, otter::core::kHashSize, sha_hex);
  char meta_text[96];
  const int meta_len =
      std::snprintf(meta_text, sizeof meta_text, "%llu %s\n", static_cast<unsigned long long>(size), sha_hex);

  // Resume an exact (size, sha256) match whose held bytes do not exceed the size.
  std::uint64_t held = 0;
  bool resumed = false;
  {
    fs::File m = fs_.open(meta_, FILE_READ);
    char have[96] = {};
    const std::size_t n = m ? m.read(reinterpret_cast<std::uint8_t*>(have), sizeof have - 1) : 0;
    m.close();
    if (n == static_cast<std::size_t>(meta_len) && std::memcmp(have, meta_text, n) == 0) {
      fs::File p = fs_.open(part_, FILE_READ);
      if (p && !p.isDirectory() && p.size() <= size && hash_file(p, hasher, held)) resumed = true;
      p.close();
    }
  }
  if (resumed) {
    file_ = fs_.open(part_, FILE_APPEND);
    resumed = static_cast<bool>(file_) && file_.size() == held;
  }
  if (!resumed) {
    if (file_) file_.close();
    hasher.reset();
    held = 0;
    fs_.remove(part_);
    fs_.remove(meta_);
    // Refuse before creating anything: on a small file system an empty partial copy would only take blocks.
    if (size > free_space()) return fail(ErrorCode::no_space, "not enough free space on the file system");
    fs::File m = fs_.open(meta_, FILE_WRITE);
    const bool meta_ok = m && m.write(reinterpret_cast<const std::uint8_t*>(meta_text),
                                      static_cast<std::size_t>(meta_len)) == static_cast<std::size_t>(meta_len);
    if (m) {
      m.flush();
      m.close();
    }
    if (meta_ok) file_ = fs_.open(part_, FILE_WRITE);
    if (!meta_ok || !file_) {
      fs_.remove(meta_);
      const bool full = free_space() < std::uint64_t{2} * 4096;
      if (full) return fail(ErrorCode::no_space, "the file system is full");
      return fail(ErrorCode::storage, "cannot create the partial copy");
    }
  }
  mode_ = Mode::file;
  size_ = size;
  written_ = held;
  return held;
}

Result<std::uint64_t> DeviceStorage::begin_firmware(std::uint64_t size) {
  if (Update.isRunning()) Update.abort();
  const esp_partition_t* p = esp_ota_get_next_update_partition(nullptr);
  if (p == nullptr) return fail(ErrorCode::storage, "no OTA partition to update (the partition table needs two)");
  if (size > p->size) return fail(ErrorCode::no_space, "the firmware is larger than the OTA partition");
  if (!Update.begin(static_cast<std::size_t>(size), U_FLASH)) return tl::unexpected(update_error("Update.begin"));
  mode_ = Mode::firmware;
  size_ = size;
  written_ = 0;
  return std::uint64_t{0};
}

Result<void> DeviceStorage::write(const std::uint8_t* data, std::size_t n) {
  if (mode_ == Mode::none) return fail(ErrorCode::internal, "no transfer is open");
  if (n > size_ - written_) return fail(ErrorCode::storage, "more data than the announced size");
  if (mode_ == Mode::firmware) {
    // Update::write takes a non-const pointer but only reads from it.
    const std::size_t w = Update.write(const_cast<std::uint8_t*>(data), n);
    if (w != n) return tl::unexpected(update_error("Update.write"));
    written_ += n;
    return {};
  }
  const std::size_t w = file_.write(data, n);
  if (w != n) {
    if (free_space() < n) return fail(ErrorCode::no_space, "the file system is full");
    return fail(ErrorCode::storage, "cannot write the partial copy");
  }
  written_ += n;
  return {};
}

Result<void> DeviceStorage::commit() {
  if (mode_ == Mode::none) return fail(ErrorCode::internal, "no transfer is open");
  if (written_ != size_) {
    suspend();
    return fail(ErrorCode::internal, "commit before all bytes were written");
  }
  if (mode_ == Mode::firmware) {
    const bool ok = Update.isFinished() && Update.end(true);
    if (!ok) {
      const otter::core::Error e = update_error("Update.end");
      Update.abort();
      close_transfer();
      return tl::unexpected(e);
    }
    close_transfer();
    return {};
  }
  file_.flush();
  file_.close();
  // Parents of the target, then the atomic replace. On failure the verified partial copy is kept: an identical push
  // resumes at its end and only commits.
  for (std::size_t i = 1; target_[i] != '\0'; ++i) {
    if (target_[i] != '/') continue;
    target_[i] = '\0';
    const bool ok = fs_.mkdir(target_);
    target_[i] = '/';
    if (!ok) {
      close_transfer();
      return fail(ErrorCode::storage, "cannot create a parent directory of the name");
    }
  }
  if (!fs_.rename(part_, target_)) {
    close_transfer();
    return fail(ErrorCode::storage, "cannot rename the partial copy into place");
  }
  fs_.remove(meta_);
  close_transfer();
  return {};
}

void DeviceStorage::suspend() {
  if (mode_ == Mode::firmware) {
    Update.abort();  // a firmware transfer cannot resume: the partition is rewritten from its start next time
  } else if (mode_ == Mode::file && file_) {
    file_.flush();
  }
  close_transfer();
}

void DeviceStorage::discard() {
  if (mode_ == Mode::firmware) {
    Update.abort();
  } else if (mode_ == Mode::file) {
    if (file_) file_.close();
    fs_.remove(part_);
    fs_.remove(meta_);
  }
  close_transfer();
}

Result<otter::core::FileStat> DeviceStorage::stat(otter::core::ByteView name, otter::core::Sha256& hasher) {
  otter::core::FileStat result;
  char path[otter::core::kMaxNameLen + 2];
  path[0] = '/';
  std::memcpy(path + 1, name.data, name.size);
  path[name.size + 1] = '\0';
  fs::File f = fs_.open(path, FILE_READ);
  if (!f || f.isDirectory()) return result;
  std::uint64_t n = 0;
  if (!hash_file(f, hasher, n)) return fail(ErrorCode::storage, "cannot read the file");
  hasher.finish(result.sha256);
  result.exists = true;
  result.size = n;
  return result;
}

}  // namespace otter_arduino
