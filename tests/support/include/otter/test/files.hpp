// otter test support — file helpers: deterministic random content, reading, SHA-256 (through the OpenSSL port), and
// directory-tree snapshots to assert that nothing was written outside a root.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace otter::test {

/// n pseudo-random bytes, a pure function of (n, seed) (splitmix64; identical to write_random_file's content).
std::string random_bytes(std::size_t n, std::uint64_t seed);
/// Writes random_bytes(n, seed) to `path` (streamed in blocks; creates parent directories). Throws on failure.
void write_random_file(const std::filesystem::path& path, std::uint64_t n, std::uint64_t seed);
/// Writes `content` to `path` (creates parent directories, truncates). Throws on failure.
void write_file(const std::filesystem::path& path, std::string_view content);
/// The whole file. Throws std::runtime_error if it cannot be read.
std::string read_file(const std::filesystem::path& path);

/// Lower-case hex.
std::string to_hex(const std::uint8_t* data, std::size_t n);
std::string to_hex(std::string_view bytes);
/// SHA-256 of bytes, raw and hex.
std::array<std::uint8_t, 32> sha256(std::string_view data);
std::string sha256_hex(std::string_view data);
/// SHA-256 hex of a file's content (streamed). Throws if it cannot be read.
std::string sha256_file_hex(const std::filesystem::path& path);

/// Every entry below `root` (not following symlinks), as sorted relative paths: directories end with '/', symlinks
/// are "path -> target". `root` itself is not listed.
std::vector<std::string> list_tree(const std::filesystem::path& root);
/// Relative path -> "dir" | "file <size> <sha256hex>" | "link <target>" | "other", for before/after comparisons.
using TreeSnapshot = std::map<std::string, std::string>;
TreeSnapshot snapshot_tree(const std::filesystem::path& root);
/// Human-readable differences ("+ added", "- removed", "~ changed" lines); empty if equal.
std::string diff_trees(const TreeSnapshot& before, const TreeSnapshot& after);

}  // namespace otter::test
