#include "otter/test/tcp.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace otter::test {
namespace {

using clock = std::chrono::steady_clock;

int ms_left(clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

/// poll(fd, events) until ready or deadline: 1 ready, 0 timeout, -1 error.
int wait_fd(int fd, short events, clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, ms_left(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return -1;
    return rc == 0 ? 0 : 1;
  }
}

}  // namespace

TcpClient::TcpClient(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string h = host.size() > 2 && host.front() == '[' ? host.substr(1, host.size() - 2) : host;
  const int gai = ::getaddrinfo(h.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (gai != 0) throw std::runtime_error("resolve " + host + ": " + ::gai_strerror(gai));
  std::string err = "no address";
  for (addrinfo* ai = res; ai != nullptr && fd_ < 0; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      err = std::strerror(errno);
      continue;
    }
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      if (wait_fd(fd, POLLOUT, deadline) == 1) {
        int so = 0;
        socklen_t len = sizeof so;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len);
        rc = so == 0 ? 0 : -1;
        errno = so;
      } else {
        errno = ETIMEDOUT;
      }
    }
    if (rc != 0) {
      err = std::strerror(errno);
      ::close(fd);
      continue;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fd_ = fd;
  }
  ::freeaddrinfo(res);
  if (fd_ < 0) throw std::runtime_error("connect " + host + ":" + std::to_string(port) + ": " + err);
}

TcpClient::~TcpClient() { close(); }

TcpClient::TcpClient(TcpClient&& other) noexcept
    : fd_(other.fd_), last_(other.last_), discarded_(std::move(other.discarded_)) {
  other.fd_ = -1;
}

TcpClient& TcpClient::operator=(TcpClient&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.fd_;
    last_ = other.last_;
    discarded_ = std::move(other.discarded_);
    other.fd_ = -1;
  }
  return *this;
}

void TcpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void TcpClient::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

bool TcpClient::send_all(const std::uint8_t* data, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd_, data, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool TcpClient::send_all(std::string_view data) {
  return send_all(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
}

TcpClient::Status TcpClient::read_exact(std::size_t n, std::string& out, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  char buf[65536];
  std::size_t got = 0;
  while (got < n) {
    const int w = wait_fd(fd_, POLLIN, deadline);
    if (w == 0) return last_ = Status::timeout;
    if (w < 0) return last_ = Status::error;
    const ssize_t r = ::recv(fd_, buf, std::min(sizeof buf, n - got), 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return last_ = errno == ECONNRESET ? Status::eof : Status::error;
    }
    if (r == 0) return last_ = Status::eof;
    out.append(buf, static_cast<std::size_t>(r));
    got += static_cast<std::size_t>(r);
  }
  return last_ = Status::ok;
}

std::optional<RawFrame> TcpClient::read_frame(std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  std::string hdr;
  if (read_exact(3, hdr, timeout) != Status::ok) return std::nullopt;
  RawFrame f;
  f.type = static_cast<std::uint8_t>(hdr[0]);
  const std::size_t len =
      (static_cast<std::size_t>(static_cast<std::uint8_t>(hdr[1])) << 8) | static_cast<std::uint8_t>(hdr[2]);
  const auto left = std::chrono::milliseconds(ms_left(deadline));
  if (len > 0 && read_exact(len, f.payload, left) != Status::ok) return std::nullopt;
  return f;
}

bool TcpClient::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  discarded_.clear();
  char buf[65536];
  for (;;) {
    const int w = wait_fd(fd_, POLLIN, deadline);
    if (w == 0) {
      last_ = Status::timeout;
      return false;
    }
    if (w < 0) {
      last_ = Status::error;
      return false;
    }
    const ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      last_ = Status::eof;
      return true;
    }
    discarded_.append(buf, static_cast<std::size_t>(r));
  }
}

std::string make_frame(std::uint8_t type, std::string_view payload) {
  std::string f;
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>((payload.size() >> 8) & 0xFF));
  f.push_back(static_cast<char>(payload.size() & 0xFF));
  f.append(payload);
  return f;
}

LoopbackSocket listen_loopback(int backlog, const std::string& who) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      (backlog >= 0 && ::listen(fd, backlog) != 0) || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    throw std::runtime_error(who + ": cannot listen: " + std::strerror(err));
  }
  return {fd, ntohs(a.sin_port)};
}

RefusedPort::RefusedPort() {
  const auto s = listen_loopback(-1, "RefusedPort");  // bound, never listening
  fd_ = s.fd;
  port_ = s.port;
}

RefusedPort::~RefusedPort() { ::close(fd_); }

}  // namespace otter::test
