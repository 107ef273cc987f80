#include "otter/test/temp_dir.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace otter::test {

TempDir::TempDir(std::string_view prefix) {
  std::string tmpl = "/tmp/" + std::string(prefix) + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
  }
  path_ = buf.data();
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }

TempDir::~TempDir() {
  if (path_.empty()) return;
  const char* keep = std::getenv("OTTER_KEEP_TEMP");
  if (keep != nullptr && *keep != '\0' && std::string(keep) != "0") return;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::remove_all(path_, ec);
  if (!ec) return;
  // A test may have made something read-only: give the owner full access to every directory and retry.
  for (auto it = fs::recursive_directory_iterator(path_, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code ec2;
    if (it->is_directory(ec2) && !it->is_symlink(ec2)) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec2);
    }
  }
  fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(path_, ec);
}

std::filesystem::path TempDir::mkdir(const std::filesystem::path& rel) const {
  auto p = path_ / rel;
  std::filesystem::create_directories(p);
  return p;
}

}  // namespace otter::test
