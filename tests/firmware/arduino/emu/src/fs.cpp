// Host emulation: fs::FS / fs::File / LittleFS over DATA/littlefs (see FS.h and LittleFS.h for the semantics).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include "LittleFS.h"
#include "otter_host.hpp"

namespace fs {

namespace {
constexpr std::size_t kBlock = 4096;
constexpr std::size_t kNameMax = 64;  // LFS_NAME_MAX of esp_littlefs (CONFIG_LITTLEFS_OBJ_NAME_LEN)
constexpr std::uint64_t kDefaultCapacity = 0x160000;
}  // namespace

class FSImpl {
 public:
  std::filesystem::path root;
  std::uint64_t capacity = kDefaultCapacity;
  bool mounted = false;
  std::map<std::string, int> open_files;  // emulated path -> open handles

  /// Host path of an emulated absolute path; empty if the path is not acceptable to LittleFS.
  std::string host(const char* p) const {
    if (!mounted || p == nullptr || p[0] != '/') return {};
    std::string s(p);
    std::size_t start = 1;
    while (start <= s.size()) {
      std::size_t slash = s.find('/', start);
      if (slash == std::string::npos) slash = s.size();
      const std::string seg = s.substr(start, slash - start);
      if (seg == "." || seg == ".." || seg.size() > kNameMax) return {};
      start = slash + 1;
    }
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return (root / s.substr(1)).string();
  }
  bool is_open(const std::string& p) const {
    auto it = open_files.find(p);
    return it != open_files.end() && it->second > 0;
  }

  std::uint64_t used() const {
    // Whole blocks per file, one block per directory (its metadata pair), plus the superblock pair.
    std::uint64_t u = 2 * kBlock;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code e2;
      if (it->is_directory(e2)) {
        u += kBlock;
      } else {
        const auto sz = it->file_size(e2);
        if (!e2) u += (sz + kBlock - 1) / kBlock * kBlock;
      }
    }
    return u;
  }
};

class FileImpl {
 public:
  FileImpl(FSImpl* fsi, std::string emu_path) : fs(fsi), path(std::move(emu_path)) {
    const auto slash = path.rfind('/');
    name = path.substr(slash + 1);
  }
  ~FileImpl() { close(); }
  FileImpl(const FileImpl&) = delete;
  FileImpl& operator=(const FileImpl&) = delete;

  void close() {
    if (f != nullptr) {
      std::fclose(f);
      f = nullptr;
      if (--fs->open_files[path] <= 0) fs->open_files.erase(path);
    }
    dir_entries.clear();
    is_dir = false;
  }

  FSImpl* fs;
  std::string path;
  std::string name;
  std::FILE* f = nullptr;
  bool is_dir = false;
  std::vector<std::string> dir_entries;  // emulated paths, for openNextFile
  std::size_t next = 0;
};

// --- File -------------------------------------------------------------------------------------------------------

size_t File::write(const uint8_t* buf, size_t size) {
  if (!impl_ || impl_->f == nullptr || buf == nullptr || size == 0) return 0;
  // Writing past the end of the file needs blocks: refuse what would not fit (ENOSPC).
  const long pos = std::ftell(impl_->f);
  std::fflush(impl_->f);
  struct stat st {};
  ::fstat(::fileno(impl_->f), &st);
  const std::uint64_t end = static_cast<std::uint64_t>(pos) + size;
  const std::uint64_t old_blocks = (static_cast<std::uint64_t>(st.st_size) + kBlock - 1) / kBlock;
  const std::uint64_t new_blocks = (end + kBlock - 1) / kBlock;
  if (new_blocks > old_blocks) {
    const std::uint64_t need = (new_blocks - old_blocks) * kBlock;
    const std::uint64_t used = impl_->fs->used();
    if (used + need > impl_->fs->capacity) {
      const std::uint64_t free_bytes = impl_->fs->capacity > used ? impl_->fs->capacity - used : 0;
      // What fits into the current last block plus the free blocks.
      const std::uint64_t room = old_blocks * kBlock + free_bytes / kBlock * kBlock;
      const std::uint64_t can = room > static_cast<std::uint64_t>(pos) ? room - static_cast<std::uint64_t>(pos) : 0;
      if (can < size) size = static_cast<size_t>(can);
      if (size == 0) return 0;
    }
  }
  return std::fwrite(buf, 1, size, impl_->f);
}

int File::available() {
  if (!impl_ || impl_->f == nullptr) return 0;
  return static_cast<int>(size() - position());
}

int File::read() {
  uint8_t b = 0;
  return read(&b, 1) == 1 ? b : -1;
}

size_t File::read(uint8_t* buf, size_t size) {
  if (!impl_ || impl_->f == nullptr || buf == nullptr || size == 0) return 0;
  return std::fread(buf, 1, size, impl_->f);
}

void File::flush() {
  if (!impl_ || impl_->f == nullptr) return;
  std::fflush(impl_->f);
  ::fsync(::fileno(impl_->f));
}

bool File::seek(uint32_t pos, SeekMode mode) {
  if (!impl_ || impl_->f == nullptr) return false;
  const int whence = mode == SeekSet ? SEEK_SET : mode == SeekCur ? SEEK_CUR : SEEK_END;
  return std::fseek(impl_->f, static_cast<long>(pos), whence) == 0;
}

size_t File::position() const {
  if (!impl_ || impl_->f == nullptr) return 0;
  return static_cast<size_t>(std::ftell(impl_->f));
}

size_t File::size() const {
  if (!impl_ || impl_->f == nullptr) return 0;
  std::fflush(impl_->f);
  struct stat st {};
  if (::fstat(::fileno(impl_->f), &st) != 0) return 0;
  return static_cast<size_t>(st.st_size);
}

void File::close() {
  if (impl_) impl_->close();
  impl_.reset();
}

File::operator bool() const { return impl_ && (impl_->f != nullptr || impl_->is_dir); }

bool File::isDirectory() const { return impl_ && impl_->is_dir; }

const char* File::path() const { return impl_ ? impl_->path.c_str() : nullptr; }

const char* File::name() const { return impl_ ? impl_->name.c_str() : nullptr; }

File File::openNextFile(const char* mode) {
  if (!impl_ || !impl_->is_dir || impl_->next >= impl_->dir_entries.size()) return File();
  FS owner(std::shared_ptr<FSImpl>(std::shared_ptr<FSImpl>(), impl_->fs));
  return owner.open(impl_->dir_entries[impl_->next++].c_str(), mode);
}

// --- FS ---------------------------------------------------------------------------------------------------------

File FS::open(const char* path, const char* mode, const bool create) {
  const std::string host = impl_->host(path);
  if (host.empty() || mode == nullptr) return File();
  std::string emu(path);
  while (emu.size() > 1 && emu.back() == '/') emu.pop_back();
  auto impl = std::make_shared<FileImpl>(impl_.get(), emu);
  std::error_code ec;
  if (mode[0] == 'r' && std::filesystem::is_directory(host, ec)) {
    impl->is_dir = true;
    for (const auto& e : std::filesystem::directory_iterator(host, ec))
      impl->dir_entries.push_back((emu == "/" ? std::string() : emu) + "/" + e.path().filename().string());
    return File(impl);
  }
  if (mode[0] != 'r') {
    if (create) {
      // As VFSImpl::open: make each missing parent directory.
      std::string p;
      std::size_t i = 1;
      for (;;) {
        const std::size_t slash = emu.find('/', i);
        if (slash == std::string::npos) break;
        p = emu.substr(0, slash);
        if (!mkdir(p.c_str())) return File();
        i = slash + 1;
      }
    }
    if (std::filesystem::is_directory(host, ec)) return File();
  }
  const std::string m = std::string(mode) + "e";  // O_CLOEXEC: an emulated restart re-executes the program
  impl->f = std::fopen(host.c_str(), m.c_str());
  if (impl->f == nullptr) return File();
  ++impl_->open_files[emu];
  return File(impl);
}

bool FS::exists(const char* path) {
  const std::string host = impl_->host(path);
  std::error_code ec;
  return !host.empty() && std::filesystem::exists(host, ec);
}

bool FS::remove(const char* path) {
  const std::string host = impl_->host(path);
  if (host.empty() || impl_->is_open(path)) return false;
  std::error_code ec;
  if (std::filesystem::is_directory(host, ec)) return false;
  return ::unlink(host.c_str()) == 0;
}

bool FS::rename(const char* pathFrom, const char* pathTo) {
  const std::string from = impl_->host(pathFrom);
  const std::string to = impl_->host(pathTo);
  if (from.empty() || to.empty()) return false;
  if (impl_->is_open(pathFrom) || impl_->is_open(pathTo)) return false;  // EBUSY in esp_littlefs
  std::error_code ec;
  if (std::filesystem::is_directory(to, ec) && !std::filesystem::is_directory(from, ec)) return false;
  return ::rename(from.c_str(), to.c_str()) == 0;  // replaces an existing file atomically, as lfs_rename
}

bool FS::mkdir(const char* path) {
  const std::string host = impl_->host(path);
  if (host.empty()) return false;
  std::error_code ec;
  if (std::filesystem::is_directory(host, ec)) return true;
  if (std::filesystem::exists(host, ec)) return false;  // a file of that name
  if (impl_->used() + kBlock > impl_->capacity) return false;
  return ::mkdir(host.c_str(), 0755) == 0;
}

bool FS::rmdir(const char* path) {
  const std::string host = impl_->host(path);
  return !host.empty() && ::rmdir(host.c_str()) == 0;
}

// --- LittleFS ---------------------------------------------------------------------------------------------------

namespace {
std::shared_ptr<FSImpl>& littlefs_impl() {
  static auto impl = std::make_shared<FSImpl>();
  return impl;
}
}  // namespace

LittleFSFS::LittleFSFS() : FS(littlefs_impl()) {}

bool LittleFSFS::begin(bool formatOnFail, const char* basePath, uint8_t maxOpenFiles, const char* partitionLabel) {
  (void)formatOnFail;
  (void)basePath;
  (void)maxOpenFiles;
  (void)partitionLabel;
  if (impl_->mounted) return true;  // as the real one: already mounted
  impl_->root = otter_host::data_dir() / "littlefs";
  std::error_code ec;
  std::filesystem::create_directories(impl_->root, ec);
  impl_->mounted = !ec;
  return impl_->mounted;
}

bool LittleFSFS::format() {
  std::error_code ec;
  if (!impl_->open_files.empty()) return false;
  std::filesystem::remove_all(impl_->root, ec);
  std::filesystem::create_directories(impl_->root, ec);
  return !ec;
}

size_t LittleFSFS::totalBytes() { return static_cast<size_t>(impl_->capacity); }

size_t LittleFSFS::usedBytes() { return impl_->mounted ? static_cast<size_t>(impl_->used()) : 0; }

void LittleFSFS::end() { impl_->mounted = false; }

}  // namespace fs

fs::LittleFSFS LittleFS;

namespace otter_host::detail {
void set_fs_capacity(std::uint64_t bytes) { fs::littlefs_impl()->capacity = bytes; }
}  // namespace otter_host::detail
