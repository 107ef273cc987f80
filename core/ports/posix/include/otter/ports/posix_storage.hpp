// otter — StoragePort on a POSIX directory: the agent's (and Linux boards') storage.
//
// Layout under the root:
//   ROOT/<name>                       committed files (the only place targets appear)
//   ROOT/.otter/part/<H>.part         partial copy of an interrupted or running transfer, H = hex SHA-256 of name
//   ROOT/.otter/part/<H>.meta         "size sha256hex\n" of that partial copy
// Commit = fsync partial, mkdir -p parents, rename(partial, ROOT/<name>), fsync parent dir. A target is therefore
// either the old file or the complete new one, never partial. Names are validated by the core; this port also
// refuses to follow symlinks out of the root (O_NOFOLLOW on every component, openat-based walk).
//
// Details of this implementation:
//   - Every path below the root is reached with openat(O_NOFOLLOW | O_DIRECTORY) one component at a time, starting
//     from an fd of the root (the root itself may be a symlink: that is the operator's choice). A component that is
//     a symlink, or a file where a directory is needed, is refused with BAD_NAME ("... symbolic link ..."); so is a
//     target that is itself a symlink or a directory. Missing parents are created (mkdirat, 0755) at commit only, so
//     a refused or failed push leaves no empty directories behind.
//   - begin() resumes only if <H>.meta matches (size, sha256) exactly and <H>.part holds at most `size` bytes; the
//     held bytes are re-read (64 KiB blocks) into the hasher. Anything else about that name is discarded.
//   - write() retries EINTR and short writes; ENOSPC/EDQUOT -> NO_SPACE, other errors -> STORAGE. On Linux it starts
//     the write-back of every 8 MiB written (sync_file_range, SYNC_FILE_RANGE_WRITE: it does not wait), so the disk
//     works while the data still flows and the fsync at commit has little left to do.
//   - commit() ends the transfer either way. If the partial copy cannot be synced it is deleted (STORAGE); if only
//     the rename into place fails (e.g. a directory of that name exists) the verified partial copy is kept, so a
//     later identical PUSH resumes at offset == size and just commits.
//   - stat() never follows a symlink: a symlink, a directory or any non-regular file reports exists=false.
//   - Kind `firmware` is stored exactly like `file` (a Linux board's "firmware" is a file its own updater picks up,
//     e.g. an image or a package); the device advertises caps::firmware only if it wants such pushes.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "otter/core/ports.hpp"

namespace otter::ports {

/// State shared by every session of one device: the root, the limits, and the set of names being received.
class PosixDevice {
 public:
  /// `root` must exist (it is created if missing). `max_size` 0 = no limit beyond free space.
  explicit PosixDevice(std::string root, std::uint64_t max_size = 0);

  [[nodiscard]] const std::string& root() const { return root_; }
  [[nodiscard]] std::uint64_t max_size() const { return max_size_; }
  /// Bytes available to an unprivileged writer on the root's file system (statvfs f_bavail * f_frsize).
  [[nodiscard]] std::uint64_t free_space() const;

  /// Name locks ("two pushes of the same name never interleave"). Thread-safe.
  bool try_lock(const std::string& name);
  void unlock(const std::string& name);

 private:
  std::string root_;
  std::uint64_t max_size_;
  std::mutex mu_;
  std::set<std::string> locked_;
};

/// One session's storage (one per connection). Not thread-safe; sessions may run on different threads.
class PosixStorage final : public core::StoragePort {
 public:
  explicit PosixStorage(PosixDevice& device);
  ~PosixStorage();  ///< suspends an open transfer
  PosixStorage(const PosixStorage&) = delete;
  PosixStorage& operator=(const PosixStorage&) = delete;

  std::uint64_t free_space() override;
  core::Result<std::uint64_t> begin(core::ByteView name, core::Kind kind, std::uint64_t size,
                                    const std::uint8_t sha256[core::kHashSize], core::Sha256& hasher) override;
  core::Result<void> write(const std::uint8_t* data, std::size_t n) override;
  core::Result<void> commit() override;
  void suspend() override;
  void discard() override;
  core::Result<core::FileStat> stat(core::ByteView name, core::Sha256& hasher) override;

 private:
  void close_transfer();

  PosixDevice& dev_;
  int fd_ = -1;            // partial copy, open for writing at its end
  int part_dir_fd_ = -1;   // ROOT/.otter/part of the open transfer
  std::string name_;       // locked name of the open transfer
  std::string part_path_;  // "<H>.part", relative to part_dir_fd_
  std::string meta_path_;  // "<H>.meta", relative to part_dir_fd_
  std::uint64_t size_ = 0;
  std::uint64_t written_ = 0;
  std::uint64_t flushed_ = 0;  // write-back started up to here (Linux)
};

}  // namespace otter::ports
