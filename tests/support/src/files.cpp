#include "otter/test/files.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <system_error>

#include "otter/ports/openssl_crypto.hpp"

namespace otter::test {
namespace fs = std::filesystem;

namespace {

struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

/// Fills [out, out+n) with the stream's next n bytes; the stream is consumed 8 bytes at a time, so callers must only
/// use n % 8 != 0 for the final block.
void fill(SplitMix64& g, char* out, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    std::uint64_t v = g.next();
    for (int b = 0; b < 8 && i < n; ++b, ++i) {
      out[i] = static_cast<char>(v & 0xFF);
      v >>= 8;
    }
  }
}

void make_parents(const fs::path& path) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
}

std::runtime_error io_error(const std::string& what, const fs::path& path) {
  return std::runtime_error(what + " " + path.string() + ": " + std::strerror(errno));
}

}  // namespace

std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::string s(n, '\0');
  SplitMix64 g{seed};
  fill(g, s.data(), n);
  return s;
}

void write_random_file(const fs::path& path, std::uint64_t n, std::uint64_t seed) {
  make_parents(path);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw io_error("cannot create", path);
  SplitMix64 g{seed};
  std::string block(1 << 16, '\0');  // a multiple of 8: the stream stays aligned with random_bytes()
  while (n > 0) {
    const std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(n, block.size()));
    fill(g, block.data(), len);
    f.write(block.data(), static_cast<std::streamsize>(len));
    n -= len;
  }
  f.close();
  if (!f) throw io_error("cannot write", path);
}

void write_file(const fs::path& path, std::string_view content) {
  make_parents(path);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw io_error("cannot create", path);
  f.write(content.data(), static_cast<std::streamsize>(content.size()));
  f.close();
  if (!f) throw io_error("cannot write", path);
}

std::string read_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw io_error("cannot open", path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw io_error("cannot read", path);
  return s;
}

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

std::string to_hex(std::string_view bytes) {
  return to_hex(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

std::array<std::uint8_t, 32> sha256(std::string_view data) {
  ports::OpenSslSha256 h;
  h.update(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
  std::array<std::uint8_t, 32> out{};
  h.finish(out.data());
  return out;
}

std::string sha256_hex(std::string_view data) {
  const auto d = sha256(data);
  return to_hex(d.data(), d.size());
}

std::string sha256_file_hex(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw io_error("cannot open", path);
  ports::OpenSslSha256 h;
  std::string block(1 << 16, '\0');
  while (f) {
    f.read(block.data(), static_cast<std::streamsize>(block.size()));
    const auto got = f.gcount();
    if (got > 0) h.update(reinterpret_cast<const std::uint8_t*>(block.data()), static_cast<std::size_t>(got));
  }
  if (f.bad()) throw io_error("cannot read", path);
  std::uint8_t out[32];
  h.finish(out);
  return to_hex(out, sizeof out);
}

TreeSnapshot snapshot_tree(const fs::path& root) {
  TreeSnapshot snap;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const auto rel = it->path().lexically_relative(root).generic_string();
    const auto st = it->symlink_status();
    if (fs::is_symlink(st)) {
      snap[rel] = "link " + fs::read_symlink(it->path()).string();
    } else if (fs::is_directory(st)) {
      snap[rel] = "dir";
    } else if (fs::is_regular_file(st)) {
      snap[rel] = "file " + std::to_string(fs::file_size(it->path())) + " " + sha256_file_hex(it->path());
    } else {
      snap[rel] = "other";
    }
  }
  if (ec) throw std::runtime_error("cannot list " + root.string() + ": " + ec.message());
  return snap;
}

std::vector<std::string> list_tree(const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& [rel, what] : snapshot_tree(root)) {
    if (what == "dir") {
      out.push_back(rel + "/");
    } else if (what.rfind("link ", 0) == 0) {
      out.push_back(rel + " -> " + what.substr(5));
    } else {
      out.push_back(rel);
    }
  }
  return out;  // std::map order: already sorted
}

std::string diff_trees(const TreeSnapshot& before, const TreeSnapshot& after) {
  std::string d;
  for (const auto& [k, v] : before) {
    auto it = after.find(k);
    if (it == after.end()) {
      d += "- " + k + " (" + v + ")\n";
    } else if (it->second != v) {
      d += "~ " + k + " (" + v + " -> " + it->second + ")\n";
    }
  }
  for (const auto& [k, v] : after) {
    if (before.find(k) == before.end()) d += "+ " + k + " (" + v + ")\n";
  }
  return d;
}

}  // namespace otter::test
