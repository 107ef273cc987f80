#include "otter/server/artifacts.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "otter/common/file_hash.hpp"
#include "otter/common/hex.hpp"

namespace otter::server {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxPath = 4096;
constexpr std::size_t kMaxComponent = 255;

bool within(const fs::path& child, const fs::path& root) {
  auto c = child.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++c) {
    if (c == child.end() || *c != *r) return false;
  }
  return true;
}

std::string rfc3339(std::int64_t ns) {
  const auto tp = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(ns)));
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", std::chrono::floor<std::chrono::seconds>(tp));
}

Result<ArtifactInfo> info_for(const fs::path& canon, const fs::path& root) {
  struct stat st {};
  if (::stat(canon.c_str(), &st) != 0) return make_error(ErrorCode::not_found, "File does not exist.");
  if (S_ISDIR(st.st_mode)) return make_error(ErrorCode::invalid_argument, "path is a directory, not a file");
  if (!S_ISREG(st.st_mode)) return make_error(ErrorCode::invalid_argument, "path is not a regular file");
  ArtifactInfo info;
  info.path = canon.string();
  info.name = canon.lexically_relative(root).generic_string();
  info.size = static_cast<std::uint64_t>(st.st_size);
  info.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  info.modified = rfc3339(info.mtime_ns);
  return info;
}

}  // namespace

Result<std::unique_ptr<ArtifactStore>> ArtifactStore::open(const std::string& root, std::uint64_t max_upload_bytes) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return make_error(ErrorCode::io, fmt::format("create artifact root {}: {}", root, ec.message()));
  const auto canon = fs::canonical(root, ec);
  if (ec) return make_error(ErrorCode::io, fmt::format("artifact root {}: {}", root, ec.message()));
  if (!fs::is_directory(canon)) return make_error(ErrorCode::config, "artifact root is not a directory: " + root);
  return std::unique_ptr<ArtifactStore>(new ArtifactStore(canon.string(), max_upload_bytes));
}

Result<ArtifactInfo> ArtifactStore::resolve(std::string_view user_path) const {
  if (user_path.empty()) return make_error(ErrorCode::invalid_argument, "file path is empty");
  if (user_path.size() > kMaxPath) return make_error(ErrorCode::invalid_argument, "file path is too long");
  for (unsigned char c : user_path) {
    if (c < 0x20 || c == 0x7F)
      return make_error(ErrorCode::invalid_argument, "file path contains control characters");
  }
  const fs::path root(root_);
  fs::path p{std::string(user_path)};
  for (const auto& comp : p) {
    if (comp.string().size() > kMaxComponent)
      return make_error(ErrorCode::invalid_argument, "file path has a component longer than 255 bytes");
  }
  fs::path rel;
  if (p.is_absolute()) {
    const auto norm = p.lexically_normal();
    if (!within(norm, root)) return make_error(ErrorCode::forbidden, "path is outside the artifact root");
    rel = norm.lexically_relative(root);
  } else {
    rel = p.lexically_normal();
  }
  if (rel.empty() || rel == ".") return make_error(ErrorCode::invalid_argument, "path is a directory, not a file");
  if (rel.is_absolute() || *rel.begin() == "..")
    return make_error(ErrorCode::forbidden, "path is outside the artifact root");
  const fs::path candidate = root / rel;
  std::error_code ec;
  const auto st = fs::symlink_status(candidate, ec);
  if (ec || !fs::exists(st)) {
    // A parent may be a symlink to elsewhere: do not reveal whether something exists there.
    const auto canon_parent = fs::weakly_canonical(candidate.parent_path(), ec);
    if (!ec && !within(canon_parent, root))
      return make_error(ErrorCode::forbidden, "path is outside the artifact root");
    return make_error(ErrorCode::not_found, "File does not exist.");
  }
  const auto canon = fs::canonical(candidate, ec);
  if (ec) return make_error(ErrorCode::not_found, "File does not exist.");  // dangling symlink
  if (!within(canon, root))
    return make_error(ErrorCode::forbidden, "path resolves outside the artifact root (through a symlink)");
  return info_for(canon, root);
}

Result<std::string> ArtifactStore::hash_file(const ArtifactInfo& info) {
  {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(info.path);
    if (it != cache_.end() && it->second.size == info.size && it->second.mtime_ns == info.mtime_ns)
      return it->second.sha256;
  }
  auto digest = sha256_file(info.path);
  if (!digest) return tl::unexpected(digest.error());
  std::string hex = to_hex(*digest);
  std::lock_guard lock(cache_mu_);
  cache_[info.path] = CacheEntry{info.size, info.mtime_ns, hex};
  return hex;
}

Result<ArtifactInfo> ArtifactStore::resolve_hashed(std::string_view user_path) {
  auto info = resolve(user_path);
  if (!info) return info;
  auto hex = hash_file(*info);
  if (!hex) return tl::unexpected(hex.error());
  info->sha256 = *hex;
  return info;
}

Result<std::vector<ArtifactInfo>> ArtifactStore::list() {
  std::vector<ArtifactInfo> out;
  std::error_code ec;
  const fs::path root(root_);
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
  if (ec) return make_error(ErrorCode::io, "listing artifacts: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return make_error(ErrorCode::io, "listing artifacts: " + ec.message());
    const auto& entry = *it;
    const auto fname = entry.path().filename().string();
    if (!fname.empty() && fname[0] == '.') {  // hidden files and upload temps
      if (entry.is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (!entry.is_regular_file(ec) || entry.is_symlink()) continue;
    auto info = info_for(entry.path(), root);
    if (!info) continue;
    auto hex = hash_file(*info);
    if (!hex) continue;
    info->sha256 = *hex;
    out.push_back(std::move(*info));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

Result<std::string> ArtifactStore::validate_upload_name(std::string_view name) {
  if (name.empty()) return make_error(ErrorCode::invalid_argument, "upload name is empty");
  if (name.size() > 255) return make_error(ErrorCode::invalid_argument, "upload name is longer than 255 bytes");
  if (name.front() == '/') return make_error(ErrorCode::invalid_argument, "upload name must be a relative path");
  std::size_t start = 0;
  for (std::size_t i = 0; i <= name.size(); ++i) {
    if (i < name.size()) {
      const auto c = static_cast<unsigned char>(name[i]);
      if (c < 0x20 || c == 0x7F) return make_error(ErrorCode::invalid_argument, "upload name has control characters");
      if (c == '\\') return make_error(ErrorCode::invalid_argument, "upload name has a backslash");
      if (c != '/') continue;
    }
    const auto seg = name.substr(start, i - start);
    if (seg.empty()) return make_error(ErrorCode::invalid_argument, "upload name has an empty segment");
    if (seg == "." || seg == "..")
      return make_error(ErrorCode::invalid_argument, "upload name has a '.' or '..' segment");
    if (seg.front() == '.') return make_error(ErrorCode::invalid_argument, "upload name has a hidden (dot) segment");
    start = i + 1;
  }
  return std::string(name);
}

ArtifactStore::Upload::Upload(ArtifactStore* store, std::string name, std::string final_path, std::string temp_path,
                              int fd)
    : store_(store),
      name_(std::move(name)),
      final_path_(std::move(final_path)),
      temp_path_(std::move(temp_path)),
      fd_(fd) {}

ArtifactStore::Upload::Upload(Upload&& o) noexcept
    : store_(o.store_),
      name_(std::move(o.name_)),
      final_path_(std::move(o.final_path_)),
      temp_path_(std::move(o.temp_path_)),
      fd_(std::exchange(o.fd_, -1)),
      written_(o.written_) {}

ArtifactStore::Upload::~Upload() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_path_.c_str());
  }
}

Result<void> ArtifactStore::Upload::write(const void* data, std::size_t n) {
  if (fd_ < 0) return make_error(ErrorCode::io, "upload already finished");
  if (written_ + n > store_->max_upload_)
    return make_error(ErrorCode::payload_too_large,
                      fmt::format("upload exceeds the limit of {} bytes", store_->max_upload_));
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::io, fmt::format("writing upload: {}", std::strerror(errno)));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
    written_ += static_cast<std::uint64_t>(w);
  }
  return {};
}

Result<ArtifactInfo> ArtifactStore::Upload::commit() {
  if (fd_ < 0) return make_error(ErrorCode::io, "upload already finished");
  if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
    fd_ = -1;
    ::unlink(temp_path_.c_str());
    return make_error(ErrorCode::io, fmt::format("syncing upload: {}", std::strerror(errno)));
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_path_.c_str());
    return make_error(ErrorCode::io, fmt::format("storing upload: {}", std::strerror(err)));
  }
  return store_->resolve_hashed(name_);
}

Result<ArtifactStore::Upload> ArtifactStore::begin_upload(std::string_view raw_name) {
  auto name = validate_upload_name(raw_name);
  if (!name) return tl::unexpected(name.error());
  const fs::path root(root_);
  const fs::path final_path = root / *name;
  std::error_code ec;
  fs::create_directories(final_path.parent_path(), ec);
  if (ec) return make_error(ErrorCode::io, "creating directories: " + ec.message());
  const auto canon_parent = fs::canonical(final_path.parent_path(), ec);
  if (ec || !within(canon_parent, root))
    return make_error(ErrorCode::forbidden, "upload path is outside the artifact root");
  if (fs::is_directory(fs::symlink_status(final_path)))
    return make_error(ErrorCode::conflict, "a directory of that name exists");
  std::random_device rd;
  const auto temp = canon_parent / fmt::format(".upload-{:08x}{:08x}", rd(), rd());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(ErrorCode::io, fmt::format("creating upload: {}", std::strerror(errno)));
  return Upload(this, *name, (canon_parent / final_path.filename()).string(), temp.string(), fd);
}

Result<void> ArtifactStore::remove(std::string_view user_path) {
  auto info = resolve(user_path);
  if (!info) return tl::unexpected(info.error());
  if (::unlink(info->path.c_str()) != 0)
    return make_error(ErrorCode::io, fmt::format("deleting {}: {}", info->name, std::strerror(errno)));
  std::lock_guard lock(cache_mu_);
  cache_.erase(info->path);
  return {};
}

}  // namespace otter::server
