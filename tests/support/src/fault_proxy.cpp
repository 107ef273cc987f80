#include "otter/test/fault_proxy.hpp"

#include "otter/test/tcp.hpp"

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

FaultProxy::FaultProxy(std::uint16_t target_port, ProxyFaults faults) : target_port_(target_port), faults_(faults) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("FaultProxy: pipe2 failed");
  wake_rd_ = p[0];
  wake_wr_ = p[1];
  const auto s = listen_loopback(1, "FaultProxy");
  listen_fd_ = s.fd;
  port_ = s.port;
  thread_ = std::thread([this] { run(); });
}

FaultProxy::~FaultProxy() {
  const char c = 'x';
  [[maybe_unused]] const auto n = ::write(wake_wr_, &c, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_rd_);
  ::close(wake_wr_);
}

bool FaultProxy::wait_done(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return done_; });
}

void FaultProxy::run() {
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

void FaultProxy::relay(int client, int target) {
  std::vector<char> buf(64 * 1024);
  bool client_open = true;
  for (;;) {
    pollfd p[3] = {{client_open ? client : -1, POLLIN, 0}, {target, POLLIN, 0}, {wake_rd_, POLLIN, 0}};
    if (::poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[2].revents != 0) return;
    if (p[0].revents != 0) {
      std::size_t want = buf.size();
      if (faults_.cut_after)
        want = static_cast<std::size_t>(std::min<std::uint64_t>(want, *faults_.cut_after - forwarded_.load()));
      const ssize_t n = ::recv(client, buf.data(), want, 0);
      if (n <= 0) {
        ::shutdown(target, SHUT_WR);  // pass the pusher's EOF on; keep relaying the device's last words
        client_open = false;
        continue;
      }
      inspect(buf.data(), static_cast<std::size_t>(n));
      if (!send_all(target, buf.data(), static_cast<std::size_t>(n))) return;
      forwarded_ += static_cast<std::uint64_t>(n);
      if (faults_.cut_after && forwarded_.load() >= *faults_.cut_after) {
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

void FaultProxy::inspect(char* data, std::size_t n) {
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
    if (in_data_) {
      const std::uint64_t seen = data_forwarded_.load();
      if (const auto at = faults_.corrupt_content_at; at && *at >= seen && *at < seen + take) {
        char& c = data[*at - seen];
        c = static_cast<char>(~static_cast<unsigned char>(c));
        corrupted_ = true;
      }
      data_forwarded_ += take;
    }
    payload_left_ -= take;
    data += take;
    n -= take;
  }
}

}  // namespace otter::test
