#include "otter/ports/posix_storage.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "otter/ports/openssl_crypto.hpp"

namespace otter::ports {
namespace {

using core::fail;
using core::Result;

constexpr std::size_t kBlock = std::size_t{64} * 1024;
/// write() starts the write-back of the partial copy every this many bytes (Linux).
constexpr std::uint64_t kWritebackStep = std::uint64_t{8} << 20;
constexpr const char* kOtterDir = ".otter";
constexpr const char* kPartDir = "part";

/// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string to_hex(const std::uint8_t* data, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    s.push_back(kDigits[data[i] >> 4]);
    s.push_back(kDigits[data[i] & 0xF]);
  }
  return s;
}

/// Hex SHA-256 of the name: the partial copy's file name (fixed length, no characters of the name on disk).
std::string name_key(const std::string& name) {
  OpenSslSha256 h;
  h.update(reinterpret_cast<const std::uint8_t*>(name.data()), name.size());
  std::uint8_t d[core::kHashSize];
  h.finish(d);
  return to_hex(d, sizeof d);
}

/// Splits a name into its segments; false for an empty, "." or ".." segment (the core already refused those; this
/// is a second line of defence, the walk below relies on it).
bool split_name(std::string_view name, std::vector<std::string>& out) {
  out.clear();
  if (name.empty()) return false;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = name.find('/', start);
    const std::string_view seg = name.substr(start, slash == std::string_view::npos ? name.npos : slash - start);
    if (seg.empty() || seg == "." || seg == ".." || seg.find('\0') != std::string_view::npos) return false;
    out.emplace_back(seg);
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

Result<Fd> open_root(const std::string& root) {
  // The root itself may be a symlink (the operator chose it); nothing below it is followed.
  Fd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return fail(ErrorCode::storage, "cannot open the device's root directory");
  return fd;
}

enum class Entry { missing, regular, directory, symlink, other, error };

Entry entry_type(int dirfd, const char* name) {
  struct stat st {};
  if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? Entry::missing : Entry::error;
  if (S_ISLNK(st.st_mode)) return Entry::symlink;
  if (S_ISDIR(st.st_mode)) return Entry::directory;
  if (S_ISREG(st.st_mode)) return Entry::regular;
  return Entry::other;
}

/// Walks from `root_fd` through `count` components of `comps`, each opened with O_NOFOLLOW | O_DIRECTORY. With
/// `create`, missing ones are made (0755). Without it, a missing component yields an invalid Fd (not an error).
Result<Fd> walk(int root_fd, const std::vector<std::string>& comps, std::size_t count, bool create) {
  Fd cur(::dup(root_fd));
  if (!cur.valid()) return fail(ErrorCode::storage, "cannot duplicate the root directory descriptor");
  ::fcntl(cur.get(), F_SETFD, FD_CLOEXEC);
  for (std::size_t i = 0; i < count; ++i) {
    const char* c = comps[i].c_str();
    for (int attempt = 0;; ++attempt) {
      Fd next(::openat(cur.get(), c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (next.valid()) {
        cur = std::move(next);
        break;
      }
      const int err = errno;
      if (err == ENOENT) {
        if (!create) return Fd();
        if (::mkdirat(cur.get(), c, 0755) != 0 && errno != EEXIST) {
          if (errno == ENOSPC || errno == EDQUOT) return fail(ErrorCode::no_space, "no space to create a directory");
          return fail(ErrorCode::storage, "cannot create a parent directory of the name");
        }
        if (attempt < 2) continue;  // open what we (or a concurrent session) just made
        return fail(ErrorCode::storage, "cannot open a parent directory of the name");
      }
      switch (entry_type(cur.get(), c)) {
        case Entry::symlink:
          return fail(ErrorCode::bad_name, "a component of the name is a symbolic link on the device (refused)");
        case Entry::regular:
        case Entry::other:
          return fail(ErrorCode::bad_name, "a parent of the name is not a directory on the device");
        default:
          return fail(ErrorCode::storage, "cannot open a parent directory of the name");
      }
    }
  }
  return cur;
}

/// The target (last component) must be absent or a regular file: never a symlink (not even to replace it) nor a
/// directory.
Result<void> check_target(int parent_fd, const std::string& last) {
  switch (entry_type(parent_fd, last.c_str())) {
    case Entry::missing:
    case Entry::regular:
      return {};
    case Entry::symlink:
      return fail(ErrorCode::bad_name, "the target is a symbolic link on the device (refused)");
    case Entry::directory:
      return fail(ErrorCode::bad_name, "the target is a directory on the device");
    case Entry::other:
      return fail(ErrorCode::bad_name, "the target exists and is not a regular file");
    case Entry::error:
      break;
  }
  return fail(ErrorCode::storage, "cannot inspect the target");
}

core::Error write_error(int err) {
  if (err == ENOSPC || err == EDQUOT) return {ErrorCode::no_space, "the device ran out of space"};
  return {ErrorCode::storage, "cannot write the partial copy"};
}

/// write(2) until everything is written; 0 or the errno.
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

/// Parses "size sha256hex\n".
bool parse_meta(std::string_view text, std::uint64_t& size, std::string& sha_hex) {
  const auto sp = text.find(' ');
  if (sp == std::string_view::npos) return false;
  const auto* first = text.data();
  const auto [p, ec] = std::from_chars(first, first + sp, size);
  if (ec != std::errc() || p != first + sp) return false;
  std::string_view rest = text.substr(sp + 1);
  if (!rest.empty() && rest.back() == '\n') rest.remove_suffix(1);
  if (rest.size() != 2 * core::kHashSize) return false;
  sha_hex = std::string(rest);
  return true;
}

std::string read_small(int dirfd, const std::string& name) {
  Fd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return {};
  char buf[256];
  std::string s;
  for (;;) {
    const ssize_t r = ::read(fd.get(), buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    s.append(buf, static_cast<std::size_t>(r));
    if (s.size() > 1024) return {};
  }
  return s;
}

void unlink_quiet(int dirfd, const std::string& name) { ::unlinkat(dirfd, name.c_str(), 0); }

}  // namespace

// --- PosixDevice ---------------------------------------------------------------------------------------------------

PosixDevice::PosixDevice(std::string root, std::uint64_t max_size) : root_(std::move(root)), max_size_(max_size) {
  std::error_code ec;
  std::filesystem::create_directories(root_, ec);  // failures surface as STORAGE on first use
}

std::uint64_t PosixDevice::free_space() const {
  struct statvfs vfs {};
  if (::statvfs(root_.c_str(), &vfs) != 0) return 0;
  return static_cast<std::uint64_t>(vfs.f_bavail) * static_cast<std::uint64_t>(vfs.f_frsize);
}

bool PosixDevice::try_lock(const std::string& name) {
  std::lock_guard lk(mu_);
  return locked_.insert(name).second;
}

void PosixDevice::unlock(const std::string& name) {
  std::lock_guard lk(mu_);
  locked_.erase(name);
}

// --- PosixStorage --------------------------------------------------------------------------------------------------

PosixStorage::PosixStorage(PosixDevice& device) : dev_(device) {}

PosixStorage::~PosixStorage() { suspend(); }

std::uint64_t PosixStorage::free_space() { return dev_.free_space(); }

void PosixStorage::close_transfer() {
  if (fd_ >= 0) ::close(fd_);
  if (part_dir_fd_ >= 0) ::close(part_dir_fd_);
  fd_ = -1;
  part_dir_fd_ = -1;
  if (!name_.empty()) dev_.unlock(name_);
  name_.clear();
  part_path_.clear();
  meta_path_.clear();
  size_ = 0;
  written_ = 0;
}

core::Result<std::uint64_t> PosixStorage::begin(core::ByteView name, core::Kind /*kind*/, std::uint64_t size,
                                                const std::uint8_t sha256[core::kHashSize], core::Sha256& hasher) {
  // Kind firmware is stored like a file (see the header).
  if (fd_ >= 0) suspend();  // one transfer at a time: keep the previous one for resume

  std::string n(reinterpret_cast<const char*>(name.data), name.size);
  std::vector<std::string> comps;
  if (!split_name(n, comps)) return fail(ErrorCode::bad_name, "name is not a valid relative path");
  if (!dev_.try_lock(n)) return fail(ErrorCode::busy, "this name is being received on another connection");
  name_ = n;  // from here on, close_transfer() unlocks

  auto failed = [this](core::Error e) -> core::Result<std::uint64_t> {
    close_transfer();
    return tl::unexpected(e);
  };

  auto root = open_root(dev_.root());
  if (!root) return failed(root.error());
  // Refuse early what commit would refuse (symlinks, files in the way, a directory target) before any data flows.
  auto parent = walk(root->get(), comps, comps.size() - 1, /*create=*/false);
  if (!parent) return failed(parent.error());
  if (parent->valid()) {
    auto t = check_target(parent->get(), comps.back());
    if (!t) return failed(t.error());
  }

  static const std::vector<std::string> kPartComps{kOtterDir, kPartDir};
  auto part_dir = walk(root->get(), kPartComps, kPartComps.size(), /*create=*/true);
  if (!part_dir) {
    const auto e = part_dir.error();
    if (e.code == ErrorCode::no_space) return failed(e);
    return failed({ErrorCode::storage, "ROOT/.otter/part is unusable (not a plain directory?)"});
  }
  part_dir_fd_ = part_dir->release();

  const std::string key = name_key(n);
  part_path_ = key + ".part";
  meta_path_ = key + ".meta";
  size_ = size;
  const std::string sha_hex = to_hex(sha256, core::kHashSize);

  // Resume only an exact (size, sha256) match whose held bytes do not exceed the size.
  std::uint64_t held = 0;
  bool resumed = false;
  std::uint64_t meta_size = 0;
  std::string meta_sha;
  if (parse_meta(read_small(part_dir_fd_, meta_path_), meta_size, meta_sha) && meta_size == size &&
      meta_sha == sha_hex) {
    Fd fd(::openat(part_dir_fd_, part_path_.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    struct stat st {};
    if (fd.valid() && ::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode) &&
        static_cast<std::uint64_t>(st.st_size) <= size) {
      std::vector<std::uint8_t> buf(kBlock);
      bool ok = true;
      for (;;) {
        const ssize_t r = ::read(fd.get(), buf.data(), buf.size());
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) ok = false;
        if (r <= 0) break;
        hasher.update(buf.data(), static_cast<std::size_t>(r));
        held += static_cast<std::uint64_t>(r);
      }
      if (ok && held <= size && ::lseek(fd.get(), static_cast<off_t>(held), SEEK_SET) >= 0) {
        fd_ = fd.release();
        resumed = true;
      }
    }
  }

  if (!resumed) {
    hasher.reset();  // it may have been fed a partial copy that turned out unreadable
    held = 0;
    unlink_quiet(part_dir_fd_, part_path_);
    unlink_quiet(part_dir_fd_, meta_path_);
    Fd fd(::openat(part_dir_fd_, part_path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd.valid()) {
      const int err = errno;
      if (err == ENOSPC || err == EDQUOT) return failed(write_error(err));
      return failed({ErrorCode::storage, "cannot create the partial copy"});
    }
    Fd meta(::openat(part_dir_fd_, meta_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
    const std::string text = std::to_string(size) + " " + sha_hex + "\n";
    int err =
        meta.valid() ? write_all(meta.get(), reinterpret_cast<const std::uint8_t*>(text.data()), text.size()) : errno;
    if (err == 0 && ::fsync(meta.get()) != 0) err = errno;
    if (err != 0) {
      unlink_quiet(part_dir_fd_, part_path_);
      unlink_quiet(part_dir_fd_, meta_path_);
      if (err == ENOSPC || err == EDQUOT) return failed(write_error(err));
      return failed({ErrorCode::storage, "cannot write the partial copy's metadata"});
    }
    fd_ = fd.release();
  }
  written_ = held;
  flushed_ = held;
  return held;
}

core::Result<void> PosixStorage::write(const std::uint8_t* data, std::size_t n) {
  if (fd_ < 0) return fail(ErrorCode::internal, "no transfer is open");
  if (n > size_ - written_) return fail(ErrorCode::storage, "more data than the announced size");
  const int err = write_all(fd_, data, n);
  if (err != 0) return tl::unexpected(write_error(err));
  written_ += n;
#if defined(__linux__)
  if (written_ - flushed_ >= kWritebackStep) {
    // Best effort: an error here shows up again at the fsync of commit().
    (void)::sync_file_range(fd_, static_cast<off_t>(flushed_), static_cast<off_t>(written_ - flushed_),
                            SYNC_FILE_RANGE_WRITE);
    flushed_ = written_;
  }
#endif
  return {};
}

core::Result<void> PosixStorage::commit() {
  if (fd_ < 0) return fail(ErrorCode::internal, "no transfer is open");
  if (written_ != size_) {
    suspend();
    return fail(ErrorCode::internal, "commit before all bytes were written");
  }
  if (::fsync(fd_) != 0) {
    const int err = errno;
    discard();  // the partial copy is not trustworthy
    if (err == ENOSPC || err == EDQUOT) return fail(ErrorCode::no_space, "the device ran out of space");
    return fail(ErrorCode::storage, "cannot sync the partial copy");
  }
  // From here on the partial copy is complete, synced and verified: on failure keep it (a retry resumes at the end).
  auto keep = [this](core::Error e) -> core::Result<void> {
    close_transfer();
    return tl::unexpected(e);
  };
  std::vector<std::string> comps;
  if (!split_name(name_, comps)) return keep({ErrorCode::bad_name, "name is not a valid relative path"});
  auto root = open_root(dev_.root());
  if (!root) return keep(root.error());
  auto parent = walk(root->get(), comps, comps.size() - 1, /*create=*/true);
  if (!parent) return keep(parent.error());
  auto t = check_target(parent->get(), comps.back());
  if (!t) return keep(t.error());
  if (::renameat(part_dir_fd_, part_path_.c_str(), parent->get(), comps.back().c_str()) != 0) {
    return keep({ErrorCode::storage, "cannot rename the partial copy into place"});
  }
  const bool synced = ::fsync(parent->get()) == 0;
  unlink_quiet(part_dir_fd_, meta_path_);
  close_transfer();
  if (!synced) return fail(ErrorCode::storage, "cannot sync the target's directory (the new file is in place)");
  return {};
}

void PosixStorage::suspend() {
  if (fd_ < 0) return;
  ::fsync(fd_);
  ::fsync(part_dir_fd_);
  close_transfer();
}

void PosixStorage::discard() {
  if (fd_ < 0) return;
  unlink_quiet(part_dir_fd_, part_path_);
  unlink_quiet(part_dir_fd_, meta_path_);
  close_transfer();
}

core::Result<core::FileStat> PosixStorage::stat(core::ByteView name, core::Sha256& hasher) {
  core::FileStat result;  // exists = false
  std::vector<std::string> comps;
  if (!split_name(std::string_view(reinterpret_cast<const char*>(name.data), name.size), comps)) {
    return fail(ErrorCode::bad_name, "name is not a valid relative path");
  }
  auto root = open_root(dev_.root());
  if (!root) return tl::unexpected(root.error());
  auto parent = walk(root->get(), comps, comps.size() - 1, /*create=*/false);
  if (!parent) {
    // A symlink or a file on the way: there is no regular file of that name under the root.
    if (parent.error().code == ErrorCode::bad_name) return result;
    return tl::unexpected(parent.error());
  }
  if (!parent->valid()) return result;
  Fd fd(::openat(parent->get(), comps.back().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR || errno == ENXIO) return result;
    return fail(ErrorCode::storage, "cannot open the file");
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail(ErrorCode::storage, "cannot stat the file");
  if (!S_ISREG(st.st_mode)) return result;
  std::vector<std::uint8_t> buf(kBlock);
  std::uint64_t size = 0;
  for (;;) {
    const ssize_t r = ::read(fd.get(), buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return fail(ErrorCode::storage, "cannot read the file");
    if (r == 0) break;
    hasher.update(buf.data(), static_cast<std::size_t>(r));
    size += static_cast<std::uint64_t>(r);
  }
  hasher.finish(result.sha256);
  result.exists = true;
  result.size = size;
  return result;
}

}  // namespace otter::ports
