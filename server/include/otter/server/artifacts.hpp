// otter-server — the artifact root: the only directory whose files can be pushed by path.
//
// Every path a client gives (relative, or absolute but inside the root) is resolved here:
//   * lexical checks first: empty, NUL / control characters, over-long paths (> 4096 bytes, or a component > 255)
//     → INVALID_ARGUMENT (HTTP 400); `..` climbing above the root, or an absolute path elsewhere → FORBIDDEN (403)
//     without touching the file system (so nothing outside the root is even probed);
//   * then the file system: missing → NOT_FOUND (404, "File does not exist."); a symlink (anywhere on the way) that
//     resolves outside the root → FORBIDDEN (403); a directory or special file → INVALID_ARGUMENT (400).
// Files are then opened with O_NOFOLLOW on the resolved canonical path.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "otter/common/error.hpp"

namespace otter::server {

struct ArtifactInfo {
  std::string name;  ///< path relative to the root, '/'-separated
  std::string path;  ///< absolute canonical path
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::string modified;  ///< RFC 3339
  std::string sha256;    ///< hex; empty until hashed
};

class ArtifactStore {
 public:
  /// Creates the root if missing. Fails if it cannot be created or is not a directory.
  static Result<std::unique_ptr<ArtifactStore>> open(const std::string& root, std::uint64_t max_upload_bytes);
  ArtifactStore(const ArtifactStore&) = delete;
  ArtifactStore& operator=(const ArtifactStore&) = delete;

  [[nodiscard]] const std::string& root() const { return root_; }
  [[nodiscard]] std::uint64_t max_upload_bytes() const { return max_upload_; }

  /// Resolves a client-supplied path (see the file comment for the error mapping).
  [[nodiscard]] Result<ArtifactInfo> resolve(std::string_view user_path) const;
  /// resolve() + SHA-256 (cached by path, size and mtime).
  Result<ArtifactInfo> resolve_hashed(std::string_view user_path);
  /// Every regular file under the root (not following symlinks out of it, skipping dot-directories), hashed.
  Result<std::vector<ArtifactInfo>> list();

  /// Validates an upload name: a relative path with the device name rules (no '..', no leading '/', no control
  /// characters or backslashes, no empty segments, no dot-files at the top such as '.otter', ≤ 255 bytes).
  [[nodiscard]] static Result<std::string> validate_upload_name(std::string_view name);
  /// Streams an upload into the root: `write` is called by the producer with chunks; the file appears atomically
  /// (temp + fsync + rename) on commit(). Enforces max_upload_bytes.
  class Upload {
   public:
    Upload(Upload&&) noexcept;
    Upload& operator=(Upload&&) = delete;
    Upload(const Upload&) = delete;
    ~Upload();  ///< removes the temp file unless committed
    Result<void> write(const void* data, std::size_t n);
    Result<ArtifactInfo> commit();

   private:
    friend class ArtifactStore;
    Upload(ArtifactStore* store, std::string name, std::string final_path, std::string temp_path, int fd);
    ArtifactStore* store_;
    std::string name_, final_path_, temp_path_;
    int fd_;
    std::uint64_t written_ = 0;
  };
  Result<Upload> begin_upload(std::string_view name);
  Result<void> remove(std::string_view user_path);

 private:
  ArtifactStore(std::string root, std::uint64_t max_upload) : root_(std::move(root)), max_upload_(max_upload) {}
  Result<std::string> hash_file(const ArtifactInfo& info);

  std::string root_;  // canonical, no trailing slash
  std::uint64_t max_upload_;
  struct CacheEntry {
    std::uint64_t size;
    std::int64_t mtime_ns;
    std::string sha256;
  };
  std::mutex cache_mu_;
  std::map<std::string, CacheEntry> cache_;
};

}  // namespace otter::server
