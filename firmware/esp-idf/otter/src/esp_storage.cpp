#include "esp_storage.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "esp_app_format.h"
#include "esp_log.h"
#include "sdkconfig.h"

#ifndef O_NOFOLLOW
#define O_NOFOLLOW 0  // the ESP-IDF VFS file systems have no symbolic links
#endif
#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

namespace otter::esp {
namespace {

using core::fail;

constexpr const char* kTag = "otter";
constexpr const char* kPartDir = ".otter/part";
constexpr std::size_t kReadBlock = 1024;  // re-reading a partial copy into the hasher (task stack)

void to_hex(const std::uint8_t* data, std::size_t n, char* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xF];
  }
  out[2 * n] = '\0';
}

std::uint64_t fnv1a64(const char* s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (; *s != '\0'; ++s) {
    h ^= static_cast<unsigned char>(*s);
    h *= 0x100000001b3ull;
  }
  return h;
}

bool is_no_space(int err) {
#ifdef EDQUOT
  if (err == EDQUOT) return true;
#endif
  return err == ENOSPC;
}

core::Error write_error(int err) {
  if (is_no_space(err)) return {ErrorCode::no_space, "the device's file system is full"};
  return {ErrorCode::storage, "cannot write the partial copy"};
}

int write_all(int fd, const std::uint8_t* data, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return 0;
}

/// mkdir -p of every parent of `path` below `base_len` characters (the base itself exists: it is the mount point).
int make_parents(char* path, std::size_t base_len) {
  for (char* p = path + base_len + 1; *p != '\0'; ++p) {
    if (*p != '/') continue;
    *p = '\0';
    const int rc = ::mkdir(path, 0755);
    const int err = errno;
    *p = '/';
    if (rc != 0 && err != EEXIST) return err;
  }
  return 0;
}

/// Parses "size sha256hex\n" and compares with the expected pair.
bool meta_matches(const char* path, std::uint64_t size, const char* sha_hex) {
  const int fd = ::open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  char text[96] = {};
  std::size_t len = 0;
  for (;;) {
    const ssize_t r = ::read(fd, text + len, sizeof text - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += static_cast<std::size_t>(r);
    if (len == sizeof text - 1) break;
  }
  ::close(fd);
  char expected[96];
  const int n = std::snprintf(expected, sizeof expected, "%" PRIu64 " %s\n", size, sha_hex);
  return n > 0 && static_cast<std::size_t>(n) == len && std::memcmp(text, expected, len) == 0;
}

}  // namespace

EspStorage::EspStorage(const char* base_path, FreeSpaceFn free_space_fn, void* free_space_ctx)
    : free_space_fn_(free_space_fn), free_space_ctx_(free_space_ctx) {
  if (base_path != nullptr && std::strlen(base_path) <= kMaxBasePath) {
    std::strcpy(base_, base_path);
    std::size_t n = std::strlen(base_);
    while (n > 1 && base_[n - 1] == '/') base_[--n] = '\0';
  }
}

EspStorage::~EspStorage() { suspend(); }

std::uint64_t EspStorage::free_space() {
  if (open_ == Open::firmware && partition_ != nullptr) return partition_->size;
  if (free_space_fn_ == nullptr) return ~std::uint64_t{0};
  return free_space_fn_(free_space_ctx_);
}

bool EspStorage::make_path(char* out, const char* rel) const {
  const int n = std::snprintf(out, kMaxPath, "%s/%s", base_, rel);
  return n > 0 && static_cast<std::size_t>(n) < kMaxPath;
}

bool EspStorage::make_part_paths() {
  char rel[64];
  const unsigned long long key = fnv1a64(name_);
  std::snprintf(rel, sizeof rel, "%s/%016llx.part", kPartDir, key);
  if (!make_path(part_path_, rel)) return false;
  std::snprintf(rel, sizeof rel, "%s/%016llx.meta", kPartDir, key);
  return make_path(meta_path_, rel);
}

core::Result<std::uint64_t> EspStorage::begin(core::ByteView name, core::Kind kind, std::uint64_t size,
                                              const std::uint8_t sha256[core::kHashSize], core::Sha256& hasher) {
  if (open_ != Open::none) suspend();  // one transfer at a time
  if (kind == core::Kind::firmware) return begin_firmware(size);
  if (base_[0] == '\0') return fail(ErrorCode::unsupported_kind, "this device stores no files");
  return begin_file(name, size, sha256, hasher);
}

core::Result<std::uint64_t> EspStorage::begin_file(core::ByteView name, std::uint64_t size,
                                                   const std::uint8_t sha256[core::kHashSize], core::Sha256& hasher) {
  if (name.size > core::kMaxNameLen) return fail(ErrorCode::bad_name, "name too long");
  std::memcpy(name_, name.data, name.size);
  name_[name.size] = '\0';
  char target[kMaxPath];
  if (!make_path(target, name_) || !make_part_paths()) {
    return fail(ErrorCode::bad_name, "name too long for the device's base path");
  }
  // Refuse early what commit would refuse: a directory (or something else) where the target should be.
  struct stat st {};
  if (::stat(target, &st) == 0) {
    if (!S_ISREG(st.st_mode))
      return fail(ErrorCode::bad_name, "the target exists on the device and is not a regular file");
  } else if (errno == ENOTDIR) {
    return fail(ErrorCode::bad_name, "a parent of the name is not a directory on the device");
  }
  const int perr = make_parents(part_path_, std::strlen(base_));
  if (perr != 0) {
    if (is_no_space(perr)) return fail(ErrorCode::no_space, "no space to create BASE/.otter/part");
    return fail(ErrorCode::storage, "BASE/.otter/part is unusable (cannot create it, or not a directory)");
  }

  char sha_hex[2 * core::kHashSize + 1];
  to_hex(sha256, core::kHashSize, sha_hex);
  std::uint64_t held = 0;
  bool resumed = false;
  if (meta_matches(meta_path_, size, sha_hex)) {
    const int fd = ::open(part_path_, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) <= size) {
      std::uint8_t buf[kReadBlock];
      bool ok = true;
      for (;;) {
        const ssize_t r = ::read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) ok = false;
        if (r <= 0) break;
        hasher.update(buf, static_cast<std::size_t>(r));
        held += static_cast<std::uint64_t>(r);
      }
      if (ok && held <= size && ::lseek(fd, static_cast<off_t>(held), SEEK_SET) >= 0) {
        fd_ = fd;
        resumed = true;
      }
    }
    if (!resumed && fd >= 0) ::close(fd);
  }
  if (!resumed) {
    hasher.reset();
    held = 0;
    ::unlink(part_path_);
    ::unlink(meta_path_);
    const int fd = ::open(part_path_, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
      const int err = errno;
      if (is_no_space(err)) return tl::unexpected(write_error(err));
      if (err == ENAMETOOLONG) return fail(ErrorCode::bad_name, "name too long for the device's file system");
      return fail(ErrorCode::storage, "cannot create the partial copy");
    }
    char text[96];
    const int len = std::snprintf(text, sizeof text, "%" PRIu64 " %s\n", size, sha_hex);
    const int mfd = ::open(meta_path_, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    int err =
        mfd >= 0 ? write_all(mfd, reinterpret_cast<const std::uint8_t*>(text), static_cast<std::size_t>(len)) : errno;
    if (err == 0 && ::fsync(mfd) != 0) err = errno;
    if (mfd >= 0) ::close(mfd);
    if (err != 0) {
      ::close(fd);
      ::unlink(part_path_);
      ::unlink(meta_path_);
      if (is_no_space(err)) return tl::unexpected(write_error(err));
      return fail(ErrorCode::storage, "cannot write the partial copy's metadata");
    }
    fd_ = fd;
  }
  open_ = Open::file;
  size_ = size;
  written_ = held;
  return held;
}

core::Result<std::uint64_t> EspStorage::begin_firmware(std::uint64_t size) {
  const esp_partition_t* running = esp_ota_get_running_partition();
#ifdef CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE
  // esp_ota_begin refuses this too (ESP_ERR_OTA_ROLLBACK_INVALID_STATE); say why in the pusher's terms.
  esp_ota_img_states_t state = ESP_OTA_IMG_UNDEFINED;
  if (running != nullptr && esp_ota_get_state_partition(running, &state) == ESP_OK &&
      state == ESP_OTA_IMG_PENDING_VERIFY) {
    return fail(ErrorCode::busy, "the running firmware is not confirmed yet (PENDING_VERIFY): confirm it first");
  }
#endif
  const esp_partition_t* part = esp_ota_get_next_update_partition(nullptr);
  if (part == nullptr) {
    return fail(ErrorCode::unsupported_kind, "no OTA app partition to update (the partition table has one app slot)");
  }
  if (size == 0) return fail(ErrorCode::storage, "an empty firmware image");
  if (size > part->size) return fail(ErrorCode::too_large, "the firmware image is larger than the OTA partition");
  esp_ota_handle_t handle = 0;
  const esp_err_t err = esp_ota_begin(part, static_cast<std::size_t>(size), &handle);
  if (err != ESP_OK) {
    ESP_LOGE(kTag, "esp_ota_begin(%s): %s", part->label, esp_err_to_name(err));
    return fail(ErrorCode::storage, "esp_ota_begin failed (see the device log)");
  }
  ESP_LOGI(kTag, "firmware: writing %" PRIu64 " bytes to %s (running %s)", size, part->label,
           running != nullptr ? running->label : "?");
  partition_ = part;
  ota_ = handle;
  open_ = Open::firmware;
  size_ = size;
  written_ = 0;
  return std::uint64_t{0};
}

core::Result<void> EspStorage::write(const std::uint8_t* data, std::size_t n) {
  if (open_ == Open::none) return fail(ErrorCode::internal, "no transfer is open");
  if (n > size_ - written_) return fail(ErrorCode::storage, "more data than the announced size");
  if (n == 0) return {};
  if (open_ == Open::file) {
    const int err = write_all(fd_, data, n);
    if (err != 0) return tl::unexpected(write_error(err));
  } else {
    if (written_ == 0 && data[0] != ESP_IMAGE_HEADER_MAGIC) {
      return fail(ErrorCode::storage, "not an ESP32 app image: the first byte is not the 0xE9 image magic (refused)");
    }
    const esp_err_t err = esp_ota_write(ota_, data, n);
    if (err != ESP_OK) {
      ESP_LOGE(kTag, "esp_ota_write: %s", esp_err_to_name(err));
      return fail(ErrorCode::storage, "esp_ota_write failed (see the device log)");
    }
  }
  written_ += n;
  return {};
}

core::Result<void> EspStorage::commit() {
  if (open_ == Open::none) return fail(ErrorCode::internal, "no transfer is open");
  if (written_ != size_) {
    suspend();
    return fail(ErrorCode::internal, "commit before all bytes were written");
  }
  return open_ == Open::file ? commit_file() : commit_firmware();
}

core::Result<void> EspStorage::commit_file() {
  if (::fsync(fd_) != 0) {
    const int err = errno;
    discard();
    if (is_no_space(err)) return fail(ErrorCode::no_space, "the device's file system is full");
    return fail(ErrorCode::storage, "cannot sync the partial copy");
  }
  ::close(fd_);
  fd_ = -1;
  // From here on the partial copy is complete and verified: on failure keep it (a retry resumes at the end).
  char target[kMaxPath];
  if (!make_path(target, name_)) {
    close_file();
    return fail(ErrorCode::bad_name, "name too long for the device's base path");
  }
  const int perr = make_parents(target, std::strlen(base_));
  if (perr != 0) {
    close_file();
    if (is_no_space(perr)) return fail(ErrorCode::no_space, "no space to create a directory");
    if (perr == ENAMETOOLONG) return fail(ErrorCode::bad_name, "a directory name is too long for the file system");
    if (perr == ENOTDIR || perr == EEXIST)
      return fail(ErrorCode::bad_name, "a parent of the name is not a directory");
    return fail(ErrorCode::storage, "cannot create a parent directory of the name");
  }
  struct stat st {};
  if (::stat(target, &st) == 0 && !S_ISREG(st.st_mode)) {
    close_file();
    return fail(ErrorCode::bad_name, "the target exists on the device and is not a regular file");
  }
  if (::rename(part_path_, target) != 0) {
    // FAT refuses to rename over an existing file: replace it (not atomic there; LittleFS never gets here).
    const int err = errno;
    if (!(err == EEXIST && ::unlink(target) == 0 && ::rename(part_path_, target) == 0)) {
      close_file();
      if (err == ENAMETOOLONG) return fail(ErrorCode::bad_name, "the name is too long for the device's file system");
      if (err == ENOTDIR) return fail(ErrorCode::bad_name, "a parent of the name is not a directory on the device");
      return fail(ErrorCode::storage, "cannot rename the partial copy into place");
    }
  }
  ::unlink(meta_path_);
  close_file();
  return {};
}

core::Result<void> EspStorage::commit_firmware() {
  const esp_partition_t* part = partition_;
  esp_err_t err = esp_ota_end(ota_);  // validates the image; the handle is freed either way
  ota_ = 0;
  partition_ = nullptr;
  open_ = Open::none;
  if (err != ESP_OK) {
    ESP_LOGE(kTag, "esp_ota_end: %s", esp_err_to_name(err));
    return fail(ErrorCode::storage, "the image did not validate (esp_ota_end); the boot partition is unchanged");
  }
  err = esp_ota_set_boot_partition(part);
  if (err != ESP_OK) {
    ESP_LOGE(kTag, "esp_ota_set_boot_partition(%s): %s", part->label, esp_err_to_name(err));
    return fail(ErrorCode::storage, "esp_ota_set_boot_partition failed; the boot partition is unchanged");
  }
  ESP_LOGI(kTag, "firmware: %s is the next boot partition", part->label);
  return {};
}

void EspStorage::close_file() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  open_ = Open::none;
  size_ = 0;
  written_ = 0;
}

void EspStorage::abort_firmware() {
  if (ota_ != 0) esp_ota_abort(ota_);
  ota_ = 0;
  partition_ = nullptr;
  open_ = Open::none;
  size_ = 0;
  written_ = 0;
}

void EspStorage::suspend() {
  if (open_ == Open::firmware) {
    abort_firmware();  // no resume for firmware
  } else if (open_ == Open::file) {
    if (written_ == 0) {
      discard();  // nothing worth resuming (e.g. refused for space right after begin): leave no empty partial copy
      return;
    }
    ::fsync(fd_);
    close_file();
  }
}

void EspStorage::discard() {
  if (open_ == Open::firmware) {
    abort_firmware();
  } else if (open_ == Open::file) {
    close_file();
    ::unlink(part_path_);
    ::unlink(meta_path_);
  }
}

core::Result<core::FileStat> EspStorage::stat(core::ByteView name, core::Sha256& hasher) {
  core::FileStat result;  // exists = false
  if (base_[0] == '\0') return result;
  char rel[core::kMaxNameLen + 1];
  char path[kMaxPath];
  if (name.size > core::kMaxNameLen) return fail(ErrorCode::bad_name, "name too long");
  std::memcpy(rel, name.data, name.size);
  rel[name.size] = '\0';
  if (!make_path(path, rel)) return fail(ErrorCode::bad_name, "name too long for the device's base path");
  const int fd = ::open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == EISDIR || errno == ENAMETOOLONG) {
      return result;
    }
    return fail(ErrorCode::storage, "cannot open the file");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return result;
  }
  std::uint8_t buf[kReadBlock];
  std::uint64_t size = 0;
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      ::close(fd);
      return fail(ErrorCode::storage, "cannot read the file");
    }
    if (r == 0) break;
    hasher.update(buf, static_cast<std::size_t>(r));
    size += static_cast<std::uint64_t>(r);
  }
  ::close(fd);
  hasher.finish(result.sha256);
  result.exists = true;
  result.size = size;
  return result;
}

}  // namespace otter::esp
