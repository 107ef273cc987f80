// otter test support — a temporary directory under /tmp, removed recursively (symlinks are removed, never followed)
// when the object goes out of scope. Set OTTER_KEEP_TEMP=1 in the environment to keep it for debugging.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace otter::test {

class TempDir {
 public:
  /// Creates /tmp/<prefix>-XXXXXX (mode 0700). Throws std::runtime_error on failure.
  explicit TempDir(std::string_view prefix = "otter-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::string str() const { return path_.string(); }
  /// path() / rel
  [[nodiscard]] std::filesystem::path operator/(const std::filesystem::path& rel) const { return path_ / rel; }
  /// Creates path()/rel (and parents) as a directory and returns it.
  std::filesystem::path mkdir(const std::filesystem::path& rel) const;

 private:
  std::filesystem::path path_;
};

}  // namespace otter::test
