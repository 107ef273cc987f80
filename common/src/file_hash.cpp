#include "otter/common/file_hash.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "otter/common/unique_fd.hpp"
#include "otter/ports/openssl_crypto.hpp"

namespace otter {

Result<void> pread_exact(int fd, std::uint8_t* buf, std::size_t n, std::uint64_t offset) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, buf + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::io, fmt::format("read at offset {}: {}", offset + got, std::strerror(errno)));
    }
    if (r == 0) {
      return make_error(ErrorCode::io,
                        fmt::format("file ended at offset {} (was it truncated while being read?)", offset + got));
    }
    got += static_cast<std::size_t>(r);
  }
  return {};
}

namespace {

/// Two block buffers handed between a reader thread (pread) and the hashing thread, so that copying a block out of
/// the page cache overlaps hashing the previous one.
class BlockPipe {
 public:
  struct Block {
    std::unique_ptr<std::uint8_t[]> data = std::make_unique_for_overwrite<std::uint8_t[]>(kHashBlockSize);
    std::size_t len = 0;
    bool full = false;
  };

  Block& slot(std::uint64_t i) { return slots_[i % 2]; }

  /// Reader: waits until slot i is free (or the consumer quit).
  bool wait_free(std::uint64_t i) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !slot(i).full || quit_; });
    return !quit_;
  }
  void publish(std::uint64_t i, std::size_t len) {
    const std::lock_guard lock(mu_);
    slot(i).len = len;
    slot(i).full = true;
    cv_.notify_all();
  }
  void fail(Error e) {
    const std::lock_guard lock(mu_);
    error_ = std::move(e);
    cv_.notify_all();
  }
  /// Consumer: waits until slot i is full; false if the reader failed.
  bool wait_full(std::uint64_t i) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return slot(i).full || error_.has_value(); });
    return slot(i).full;
  }
  void release(std::uint64_t i) {
    const std::lock_guard lock(mu_);
    slot(i).full = false;
    cv_.notify_all();
  }
  void quit() {
    const std::lock_guard lock(mu_);
    quit_ = true;
    cv_.notify_all();
  }
  [[nodiscard]] Error error() const { return error_.value_or(Error(ErrorCode::io, "read failed")); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  Block slots_[2];
  std::optional<Error> error_;
  bool quit_ = false;
};

}  // namespace

Result<Sha256Digest> sha256_fd(int fd, std::uint64_t size, const HashProgress& progress) {
  ports::OpenSslSha256 sha;
  Sha256Digest out{};
  const std::uint64_t blocks = (size + kHashBlockSize - 1) / kHashBlockSize;
  const auto block_len = [&](std::uint64_t i) {
    return static_cast<std::size_t>(std::min<std::uint64_t>(kHashBlockSize, size - i * kHashBlockSize));
  };
  if (blocks <= 1) {
    const auto buf = std::make_unique_for_overwrite<std::uint8_t[]>(kHashBlockSize);
    if (blocks == 1) {
      if (auto r = pread_exact(fd, buf.get(), block_len(0), 0); !r) return tl::unexpected(r.error());
      sha.update(buf.get(), block_len(0));
      if (progress) progress(size, size);
    }
    sha.finish(out.data());
    return out;
  }

  BlockPipe pipe;
  std::thread reader([&] {
    for (std::uint64_t i = 0; i < blocks; ++i) {
      if (!pipe.wait_free(i)) return;
      auto r = pread_exact(fd, pipe.slot(i).data.get(), block_len(i), i * kHashBlockSize);
      if (!r) {
        pipe.fail(r.error());
        return;
      }
      pipe.publish(i, block_len(i));
    }
  });
  std::optional<Error> failed;
  std::uint64_t done = 0;
  for (std::uint64_t i = 0; i < blocks; ++i) {
    if (!pipe.wait_full(i)) {
      failed = pipe.error();
      break;
    }
    sha.update(pipe.slot(i).data.get(), pipe.slot(i).len);
    done += pipe.slot(i).len;
    pipe.release(i);
    if (progress) progress(done, size);
  }
  pipe.quit();
  reader.join();
  if (failed) return tl::unexpected(*failed);
  sha.finish(out.data());
  return out;
}

Result<InputFile> open_input_file(const std::string& path) {
  InputFile in{UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)), 0};
  if (in.fd.get() < 0) {
    const int err = errno;
    return make_error(err == ENOENT ? ErrorCode::not_found : ErrorCode::io,
                      fmt::format("{}: {}", path, std::strerror(err)));
  }
  struct stat st {};
  if (::fstat(in.fd.get(), &st) != 0)
    return make_error(ErrorCode::io, fmt::format("{}: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode))
    return make_error(ErrorCode::invalid_argument, fmt::format("{} is not a regular file", path));
  in.size = static_cast<std::uint64_t>(st.st_size);
  ::posix_fadvise(in.fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  return in;
}

Result<Sha256Digest> sha256_file(const std::string& path, const HashProgress& progress) {
  auto in = open_input_file(path);
  if (!in) return tl::unexpected(in.error());
  auto r = sha256_fd(in->fd.get(), in->size, progress);
  if (!r) return tl::unexpected(r.error().with_context(path));
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
