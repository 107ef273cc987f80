// otter — SHA-256 of local files, streamed in 1 MiB blocks (pread) through the OpenSSL crypto port. Files larger
// than one block are read by a helper thread one block ahead of the hashing, so that copying and hashing overlap.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "otter/common/error.hpp"
#include "otter/common/unique_fd.hpp"

namespace otter {

using Sha256Digest = std::array<std::uint8_t, 32>;

/// Block size of the streamed hash.
constexpr std::size_t kHashBlockSize = std::size_t{1024} * 1024;

/// Called after each block: (bytes hashed so far, total).
using HashProgress = std::function<void(std::uint64_t done, std::uint64_t total)>;

/// SHA-256 of a whole file. NOT_FOUND if it does not exist, IO if it cannot be opened or read, INVALID_ARGUMENT if it
/// is not a regular file.
/// A local file opened for reading, and its size.
struct InputFile {
  UniqueFd fd;
  std::uint64_t size = 0;
};

/// Opens `path` for reading: NOT_FOUND, IO, or INVALID_ARGUMENT when it is not a regular file. Hints sequential
/// reading to the kernel.
Result<InputFile> open_input_file(const std::string& path);

Result<Sha256Digest> sha256_file(const std::string& path, const HashProgress& progress = {});

/// SHA-256 of the first `size` bytes of an open file, read with pread (the file offset is not used or changed).
/// IO if the file is shorter than `size` or a read fails.
Result<Sha256Digest> sha256_fd(int fd, std::uint64_t size, const HashProgress& progress = {});

/// Reads exactly n bytes at `offset` with pread (the file offset is not used or changed). IO if a read fails or the
/// file ends first (the message names the offset).
Result<void> pread_exact(int fd, std::uint8_t* buf, std::size_t n, std::uint64_t offset);

/// SHA-256 of bytes in memory.
Sha256Digest sha256_bytes(std::span<const std::uint8_t> data);

}  // namespace otter
