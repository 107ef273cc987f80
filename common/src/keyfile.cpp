#include "otter/common/keyfile.hpp"
#include "otter/common/unique_fd.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace otter {
namespace {

constexpr std::string_view kSpace = " \t\r\n\v\f";

}  // namespace

Result<std::string> parse_key(std::string_view content, std::string_view origin, std::size_t min_size) {
  const auto first = content.find_first_not_of(kSpace);
  if (first == std::string_view::npos) {
    return make_error(ErrorCode::config,
                      fmt::format("key file {} is empty (it must hold the secret on one line)", origin));
  }
  const auto last = content.find_last_not_of(kSpace);
  const std::string_view secret = content.substr(first, last - first + 1);
  if (secret.find_first_of("\r\n") != std::string_view::npos) {
    return make_error(ErrorCode::config,
                      fmt::format("key file {} holds more than one line (the secret must be on one line)", origin));
  }
  if (secret.size() < min_size) {
    return make_error(ErrorCode::config, fmt::format("key in {} is {} bytes long; at least {} bytes are required",
                                                     origin, secret.size(), min_size));
  }
  return std::string(secret);
}

Result<std::string> read_key_file(const std::string& path, std::size_t min_size) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    return make_error(err == ENOENT ? ErrorCode::not_found : ErrorCode::config,
                      fmt::format("key file {}: {}", path, std::strerror(err)));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return make_error(ErrorCode::config, fmt::format("key file {}: {}", path, std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error(ErrorCode::config, fmt::format("key file {} is not a regular file", path));
  }
  std::string content;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::config, fmt::format("key file {}: {}", path, std::strerror(errno)));
    }
    if (n == 0) break;
    content.append(buf, static_cast<std::size_t>(n));
    if (content.size() > kMaxKeyFileSize) {
      return make_error(ErrorCode::config,
                        fmt::format("key file {} is larger than {} bytes: not a key file", path, kMaxKeyFileSize));
    }
  }
  return parse_key(content, path, min_size);
}

}  // namespace otter
