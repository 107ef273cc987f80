// otter — a file descriptor closed when it goes out of scope (host code only).
#pragma once

#include <unistd.h>

namespace otter {

class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  /// The descriptor (negative if the open that produced it failed).
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace otter
