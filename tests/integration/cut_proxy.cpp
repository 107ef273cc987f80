#include "cut_proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace otter::test {
namespace {

bool send_all(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

CutProxy::CutProxy(std::uint16_t target_port, std::uint64_t limit) : target_port_(target_port), limit_(limit) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("CutProxy: pipe2 failed");
  wake_rd_ = p[0];
  wake_wr_ = p[1];
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 1) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throw std::runtime_error(std::string("CutProxy: cannot listen: ") + std::strerror(errno));
  }
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { run(); });
}

CutProxy::~CutProxy() {
  const char c = 'x';
  [[maybe_unused]] const auto n = ::write(wake_wr_, &c, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_rd_);
  ::close(wake_wr_);
}

bool CutProxy::wait_done(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return done_; });
}

void CutProxy::run() {
  pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_rd_, POLLIN, 0}};
  int client = -1;
  while (client < 0) {
    if (::poll(p, 2, -1) < 0 && errno != EINTR) break;
    if (p[1].revents != 0) break;
    if (p[0].revents != 0) client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  }
  if (client >= 0) {
    const int target = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(target_port_);
    if (target >= 0 && ::connect(target, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) relay(client, target);
    if (target >= 0) ::close(target);  // the device sees EOF first ...
    ::close(client);                   // ... then the pusher (a reset if it still had data on the way)
  }
  const std::lock_guard lock(mu_);
  done_ = true;
  cv_.notify_all();
}

void CutProxy::relay(int client, int target) {
  std::vector<char> buf(64 * 1024);
  for (;;) {
    pollfd p[3] = {{client, POLLIN, 0}, {target, POLLIN, 0}, {wake_rd_, POLLIN, 0}};
    if (::poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[2].revents != 0) return;
    if (p[0].revents != 0) {
      const std::uint64_t room = limit_ - forwarded_.load();
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), room));
      const ssize_t n = ::recv(client, buf.data(), want, 0);
      if (n <= 0) return;
      if (!send_all(target, buf.data(), static_cast<std::size_t>(n))) return;
      parse(buf.data(), static_cast<std::size_t>(n));
      forwarded_ += static_cast<std::uint64_t>(n);
      if (forwarded_.load() >= limit_) {
        cut_ = true;
        return;
      }
    }
    if (p[1].revents != 0) {
      const ssize_t n = ::recv(target, buf.data(), buf.size(), 0);
      if (n <= 0) return;
      if (!send_all(client, buf.data(), static_cast<std::size_t>(n))) return;
    }
  }
}

void CutProxy::parse(const char* data, std::size_t n) {
  constexpr unsigned char kData = 0x12;
  while (n > 0) {
    if (payload_left_ == 0) {
      header_[header_have_++] = static_cast<unsigned char>(*data++);
      --n;
      if (header_have_ == 3) {
        header_have_ = 0;
        payload_left_ = static_cast<std::size_t>(header_[1]) << 8 | header_[2];
        in_data_ = header_[0] == kData;
        ++frames_;
        if (in_data_) ++data_frames_;
      }
      continue;
    }
    const std::size_t take = std::min(n, payload_left_);
    if (in_data_) data_forwarded_ += take;
    payload_left_ -= take;
    data += take;
    n -= take;
  }
}

}  // namespace otter::test
