// otter fuzzing — names and paths: the core's target-name validator (core/src/name.cpp), the server's artifact-root
// resolution (ArtifactStore::resolve, on a real temp root with symlinks out of it, into it, up and in a loop) and its
// upload-name validator.
//
// Properties:
//  * validate_name accepts only names that, joined to a root and lexically normalised, stay strictly under it, with
//    no '..' / '.' component, no absolute path, no NUL / control character / backslash, at most 255 bytes;
//  * validate_upload_name: the same, and no dot segment;
//  * resolve() answers only with a regular file whose canonical path is inside the canonical root (whatever symlinks
//    are on the way), and otherwise only INVALID_ARGUMENT / FORBIDDEN / NOT_FOUND; never a crash.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "otter/core/name.hpp"
#include "otter/server/artifacts.hpp"

namespace fs = std::filesystem;
using namespace otter;

namespace {

bool under(const fs::path& child, const fs::path& root) {
  auto c = child.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++c) {
    if (c == child.end() || *c != *r) return false;
  }
  return c != child.end();  // strictly below
}

void check_relative_name(std::string_view name, bool allow_dot_segments) {
  OTTER_FUZZ_CHECK(!name.empty() && name.size() <= 255);
  OTTER_FUZZ_CHECK(name.front() != '/');
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    OTTER_FUZZ_CHECK(c >= 0x20 && c != 0x7F && c != '\\');
  }
  const fs::path root("/fuzz/root");
  const fs::path rel{std::string(name)};
  OTTER_FUZZ_CHECK(!rel.is_absolute());
  for (const auto& comp : rel) {
    OTTER_FUZZ_CHECK(comp != ".." && comp != "." && !comp.empty());
    if (!allow_dot_segments) OTTER_FUZZ_CHECK(comp.string().front() != '.');
  }
  const fs::path joined = (root / rel).lexically_normal();
  OTTER_FUZZ_CHECK(under(joined, root));
  OTTER_FUZZ_CHECK(joined.lexically_relative(root) == rel.lexically_normal());
}

struct Root {
  Root() {
    char tmpl[] = "/tmp/otter-fuzz-name-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    if (d == nullptr) std::abort();
    base = fs::canonical(d);
    root = base / "root";
    fs::create_directories(root / "fw" / "esp32");
    fs::create_directories(base / "outside");
    std::ofstream(root / "app.bin") << "app";
    std::ofstream(root / "fw" / "esp32" / "a.bin") << "a";
    std::ofstream(root / ".hidden") << "h";
    std::ofstream(base / "outside" / "secret") << "secret";
    std::ofstream(base / "root-sibling") << "sibling";                 // shares the root's name as a prefix
    fs::create_directory_symlink(base / "outside", root / "out");      // a directory outside
    fs::create_symlink(base / "outside" / "secret", root / "secret");  // a file outside
    fs::create_symlink("app.bin", root / "inlink");                    // a file inside
    fs::create_directory_symlink("../..", root / "fw" / "up");         // climbs out
    fs::create_symlink("loop", root / "loop");                         // a loop
    fs::create_symlink("missing", root / "dangling");
    ::mkfifo((root / "fifo").c_str(), 0600);
    auto s = server::ArtifactStore::open(root.string(), 1 << 20);
    if (!s) std::abort();
    store = std::move(*s);
  }
  ~Root() {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
  fs::path base, root;
  std::unique_ptr<server::ArtifactStore> store;
};

Root& shared_root() {
  static Root r;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view name(reinterpret_cast<const char*>(data) + 1, size - 1);

  if (core::validate_name(core::ByteView(name.data(), name.size()))) check_relative_name(name, true);
  if (auto n = server::ArtifactStore::validate_upload_name(name)) {
    OTTER_FUZZ_CHECK(*n == name);
    check_relative_name(name, false);
  }

  Root& r = shared_root();
  // The first byte: the path as given, or absolute under the root, or absolute under the root's parent.
  std::string path(name);
  if (data[0] % 3 == 1) path = r.root.string() + "/" + path;
  if (data[0] % 3 == 2) path = r.base.string() + "/" + path;
  auto info = r.store->resolve(path);
  if (info) {
    const fs::path p(info->path);
    OTTER_FUZZ_CHECK(p.is_absolute());
    OTTER_FUZZ_CHECK(under(p, r.root));
    std::error_code ec;
    OTTER_FUZZ_CHECK(fs::canonical(p, ec) == p && !ec);
    OTTER_FUZZ_CHECK(fs::is_regular_file(fs::symlink_status(p)));
    OTTER_FUZZ_CHECK((r.root / info->name).lexically_normal() == p);
  } else {
    const auto code = info.error().code;
    OTTER_FUZZ_CHECK(code == ErrorCode::invalid_argument || code == ErrorCode::forbidden ||
                     code == ErrorCode::not_found);
  }
  return 0;
}
