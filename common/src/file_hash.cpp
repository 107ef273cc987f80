#include "otter/common/file_hash.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "otter/ports/openssl_crypto.hpp"

namespace otter {

Result<Sha256Digest> sha256_fd(int fd, std::uint64_t size, const HashProgress& progress) {
  ports::OpenSslSha256 sha;
  const auto buf = std::make_unique_for_overwrite<std::uint8_t[]>(kHashBlockSize);
  std::uint64_t done = 0;
  while (done < size) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kHashBlockSize, size - done));
    const ssize_t n = ::pread(fd, buf.get(), want, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::io, fmt::format("read at offset {}: {}", done, std::strerror(errno)));
    }
    if (n == 0) {
      return make_error(ErrorCode::io, fmt::format("file ended at {} bytes, expected {}", done, size));
    }
    sha.update(buf.get(), static_cast<std::size_t>(n));
    done += static_cast<std::uint64_t>(n);
    if (progress) progress(done, size);
  }
  Sha256Digest out{};
  sha.finish(out.data());
  return out;
}

Result<Sha256Digest> sha256_file(const std::string& path, const HashProgress& progress) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return make_error(err == ENOENT ? ErrorCode::not_found : ErrorCode::io,
                      fmt::format("{}: {}", path, std::strerror(err)));
  }
  struct stat st {};
  Result<Sha256Digest> r = make_error(ErrorCode::io, "");
  if (::fstat(fd, &st) != 0) {
    r = make_error(ErrorCode::io, fmt::format("{}: {}", path, std::strerror(errno)));
  } else if (!S_ISREG(st.st_mode)) {
    r = make_error(ErrorCode::invalid_argument, fmt::format("{} is not a regular file", path));
  } else {
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    r = sha256_fd(fd, static_cast<std::uint64_t>(st.st_size), progress);
    if (!r) r = tl::unexpected(r.error().with_context(path));
  }
  ::close(fd);
  return r;
}

Sha256Digest sha256_bytes(std::span<const std::uint8_t> data) {
  ports::OpenSslSha256 sha;
  sha.update(data.data(), data.size());
  Sha256Digest out{};
  sha.finish(out.data());
  return out;
}

}  // namespace otter
