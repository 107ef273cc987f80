// Host emulation of arduino-esp32's FS library (fs::FS, fs::File) over a directory. The semantics that OtterOTA
// relies on are those of LittleFS behind arduino-esp32's VFS layer (esp_littlefs):
//   - paths are absolute ("/a/b"); a path component longer than LFS_NAME_MAX (64 bytes) cannot be created;
//   - open(path, "w"|"a", create=true) creates the missing parent directories; without `create` a missing parent
//     makes open fail;
//   - rename(from, to) atomically replaces an existing file `to` (lfs_rename); it fails if either file is open
//   (EBUSY),
//     if `to`'s parent does not exist, or if `to` is a directory;
//   - remove() fails on an open file or a directory; rmdir() only removes an empty directory;
//   - File::flush() is the only sync (fflush + fsync); data not flushed before a power loss may be lost;
//   - writing past the partition's capacity fails (File::write returns less than asked), as ENOSPC would.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <memory>

#include "Arduino.h"

#define FILE_READ "r"
#define FILE_WRITE "w"
#define FILE_APPEND "a"

namespace fs {

enum SeekMode { SeekSet = 0, SeekCur = 1, SeekEnd = 2 };

class FSImpl;
class FileImpl;

class File : public Print {
 public:
  File() = default;
  explicit File(std::shared_ptr<FileImpl> impl) : impl_(std::move(impl)) {}

  using Print::write;
  size_t write(uint8_t c) override { return write(&c, 1); }
  size_t write(const uint8_t* buf, size_t size) override;
  int available();
  int read();
  size_t read(uint8_t* buf, size_t size);
  void flush();
  bool seek(uint32_t pos, SeekMode mode = SeekSet);
  size_t position() const;
  size_t size() const;
  void close();
  explicit operator bool() const;
  bool isDirectory() const;
  const char* path() const;
  const char* name() const;
  File openNextFile(const char* mode = FILE_READ);

 private:
  std::shared_ptr<FileImpl> impl_;
};

class FS {
 public:
  explicit FS(std::shared_ptr<FSImpl> impl) : impl_(std::move(impl)) {}
  File open(const char* path, const char* mode = FILE_READ, const bool create = false);
  bool exists(const char* path);
  bool remove(const char* path);
  bool rename(const char* pathFrom, const char* pathTo);
  bool mkdir(const char* path);
  bool rmdir(const char* path);

 protected:
  std::shared_ptr<FSImpl> impl_;
};

}  // namespace fs

using fs::File;
using fs::FS;
using fs::SeekCur;
using fs::SeekEnd;
using fs::SeekMode;
using fs::SeekSet;
