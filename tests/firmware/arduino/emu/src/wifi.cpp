// Host emulation: WiFi, WiFiServer, WiFiClient over POSIX sockets on 127.0.0.1.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <vector>

#include "WiFi.h"
#include "otter_host.hpp"

namespace {

constexpr int kWriteRetries = 10;         // WIFI_CLIENT_MAX_WRITE_RETRY
constexpr long kWriteSelectUs = 1000000;  // WIFI_CLIENT_SELECT_TIMEOUT_US

/// Every open emulated socket, for otter_host::detail::idle_wait.
std::set<int>& open_sockets() {
  static std::set<int> s;
  return s;
}

void close_socket(int fd) {
  if (fd < 0) return;
  open_sockets().erase(fd);
  ::close(fd);
}

}  // namespace

// --- WiFiClient -------------------------------------------------------------------------------------------------

struct WiFiClient::Socket {
  explicit Socket(int f) : fd(f) { open_sockets().insert(fd); }
  ~Socket() { close_socket(fd); }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd;
};

WiFiClient::WiFiClient() = default;

WiFiClient::WiFiClient(int fd) : sock_(std::make_shared<Socket>(fd)), connected_(true) {}

WiFiClient::~WiFiClient() { stop(); }

WiFiClient& WiFiClient::operator=(const WiFiClient& other) {
  if (this != &other) {
    sock_ = other.sock_;
    connected_ = other.connected_;
  }
  return *this;
}

void WiFiClient::stop() {
  sock_.reset();
  connected_ = false;
}

int WiFiClient::fd() const { return sock_ ? sock_->fd : -1; }

size_t WiFiClient::write(const uint8_t* buf, size_t size) {
  if (!connected_ || !sock_) return 0;
  const int fd = sock_->fd;
  size_t sent = 0;
  int retry = kWriteRetries;
  while (retry > 0 && sent < size) {
    --retry;
    fd_set set;
    FD_ZERO(&set);
    FD_SET(fd, &set);
    timeval tv{0, kWriteSelectUs};
    if (::select(fd + 1, nullptr, &set, nullptr, &tv) < 0) {
      if (errno == EINTR) continue;
      return sent;
    }
    if (!FD_ISSET(fd, &set)) continue;
    const ssize_t r = ::send(fd, buf + sent, size - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r > 0) {
      sent += static_cast<size_t>(r);
      retry = kWriteRetries;
    } else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      stop();  // as the real one: a hard error ends the client
      break;
    }
  }
  return sent;
}

int WiFiClient::available() {
  if (!sock_) return 0;
  int n = 0;
  if (::ioctl(sock_->fd, FIONREAD, &n) < 0) {
    stop();
    return 0;
  }
  return n;
}

int WiFiClient::read() {
  uint8_t b = 0;
  const int r = read(&b, 1);
  return r == 1 ? b : -1;
}

int WiFiClient::read(uint8_t* buf, size_t size) {
  if (!sock_) return -1;
  if (size == 0) return 0;
  const ssize_t r = ::recv(sock_->fd, buf, size, MSG_DONTWAIT);
  if (r > 0) return static_cast<int>(r);
  if (r == 0) return 0;  // end of stream: nothing to read (connected() tells)
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
  stop();
  return -1;
}

uint8_t WiFiClient::connected() {
  if (!connected_ || !sock_) return 0;
  uint8_t b = 0;
  const ssize_t r = ::recv(sock_->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (r > 0) return 1;  // unread data: still "connected" for the sketch
  if (r == 0) {
    connected_ = false;  // the peer closed and everything was read
    return 0;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 1;
  connected_ = false;
  return 0;
}

int WiFiClient::setNoDelay(bool nodelay) {
  if (!sock_) return -1;
  int flag = nodelay ? 1 : 0;
  return ::setsockopt(sock_->fd, IPPROTO_TCP, TCP_NODELAY, &flag, sizeof flag);
}

namespace {
uint16_t port_of(int fd, bool peer) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  const int r = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len)
                     : ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return r == 0 ? ntohs(a.sin_port) : 0;
}
}  // namespace

uint16_t WiFiClient::remotePort() const { return sock_ ? port_of(sock_->fd, true) : 0; }
uint16_t WiFiClient::localPort() const { return sock_ ? port_of(sock_->fd, false) : 0; }

// --- WiFiServer -------------------------------------------------------------------------------------------------

WiFiServer::WiFiServer(uint16_t port, uint8_t max_clients) : port_(port) { (void)max_clients; }

WiFiServer::~WiFiServer() { end(); }

void WiFiServer::begin(uint16_t port) {
  if (fd_ >= 0) return;
  if (port != 0) port_ = port;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port_);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4) != 0) {
    std::fprintf(stderr, "[emu] WiFiServer: cannot listen on port %u\n", static_cast<unsigned>(port_));
    ::close(fd);
    return;
  }
  fd_ = fd;
  open_sockets().insert(fd_);
  port_ = port_of(fd_, false);
  otter_host::detail::set_bound_port(port_);
}

bool WiFiServer::hasClient() {
  if (pending_ >= 0) return true;
  if (fd_ < 0) return false;
  pending_ = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  return pending_ >= 0;
}

WiFiClient WiFiServer::accept() {
  if (!hasClient()) return WiFiClient();
  const int fd = pending_;
  pending_ = -1;
  if (no_delay_) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return WiFiClient(fd);
}

void WiFiServer::end() {
  if (pending_ >= 0) ::close(pending_);
  pending_ = -1;
  close_socket(fd_);
  fd_ = -1;
}

// --- WiFi -------------------------------------------------------------------------------------------------------

wl_status_t WiFiClass::begin(const char* ssid, const char* passphrase) {
  (void)ssid;
  (void)passphrase;
  if (mode_ == WIFI_OFF) mode_ = WIFI_STA;
  status_ = WL_CONNECTED;  // the loopback network is always there
  return status_;
}

uint8_t* WiFiClass::macAddress(uint8_t* mac) {
  static uint8_t cached[6];
  static bool loaded = false;
  if (!loaded) {
    const auto file = otter_host::data_dir() / "wifi-mac";
    std::ifstream in(file, std::ios::binary);
    if (!in.read(reinterpret_cast<char*>(cached), 6)) {
      std::random_device rd;
      for (auto& b : cached) b = static_cast<uint8_t>(rd());
      cached[0] = static_cast<uint8_t>((cached[0] & 0xFE) | 0x02);  // unicast, locally administered
      std::ofstream out(file, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(cached), 6);
    }
    loaded = true;
  }
  for (int i = 0; i < 6; ++i) mac[i] = cached[i];
  return mac;
}

const char* WiFiClass::getHostname() {
  if (hostname_[0] == '\0') {
    uint8_t mac[6];
    macAddress(mac);
    std::snprintf(hostname_, sizeof hostname_, "esp32-%02X%02X%02X%02X%02X%02X", mac[0], mac[1], mac[2], mac[3],
                  mac[4], mac[5]);
  }
  return hostname_;
}

bool WiFiClass::setHostname(const char* hostname) {
  if (hostname == nullptr || std::snprintf(hostname_, sizeof hostname_, "%s", hostname) >= int(sizeof hostname_))
    return false;
  return true;
}

WiFiClass WiFi;

// --- the idle part of the emulated loop task ---------------------------------------------------------------------

namespace otter_host::detail {

void idle_wait(int max_ms) {
  std::vector<pollfd> fds;
  for (int fd : open_sockets()) fds.push_back({fd, POLLIN, 0});
  ::poll(fds.data(), fds.size(), max_ms);
}

}  // namespace otter_host::detail
