#include "fake_device.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "otter/core/codec.hpp"
#include "otter/core/receiver.hpp"
#include "otter/ports/openssl_crypto.hpp"
#include "otter/test/tcp.hpp"

namespace otter::test {
namespace {

using core::ByteView;

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

class MemStorage final : public core::StoragePort {
 public:
  explicit MemStorage(FakeDevice::State& s) : s_(s) {}
  ~MemStorage() {
    if (open_) suspend();
  }
  MemStorage(const MemStorage&) = delete;
  MemStorage& operator=(const MemStorage&) = delete;

  std::uint64_t free_space() override { return std::uint64_t{1} << 40; }

  core::Result<std::uint64_t> begin(ByteView name, core::Kind /*kind*/, std::uint64_t size,
                                    const std::uint8_t sha256[core::kHashSize], core::Sha256& hasher) override {
    const std::string n(reinterpret_cast<const char*>(name.data), name.size);
    const std::lock_guard lock(s_.mu);
    if (!s_.locked.insert(n).second) return core::fail(ErrorCode::busy, "name is being pushed");
    std::array<std::uint8_t, 32> sha{};
    std::copy(sha256, sha256 + core::kHashSize, sha.begin());
    auto it = s_.partials.find(n);
    std::uint64_t held = 0;
    if (it != s_.partials.end() && it->second.size == size && it->second.sha256 == sha) {
      hasher.update(reinterpret_cast<const std::uint8_t*>(it->second.data.data()), it->second.data.size());
      held = it->second.data.size();
    } else {
      s_.partials[n] = FakeDevice::Partial{size, sha, {}};
    }
    name_ = n;
    open_ = true;
    return held;
  }

  core::Result<void> write(const std::uint8_t* data, std::size_t n) override {
    const std::lock_guard lock(s_.mu);
    s_.partials[name_].data.append(reinterpret_cast<const char*>(data), n);
    return {};
  }

  core::Result<void> commit() override {
    const std::lock_guard lock(s_.mu);
    s_.files[name_] = std::move(s_.partials[name_].data);
    s_.partials.erase(name_);
    s_.locked.erase(name_);
    open_ = false;
    return {};
  }

  void suspend() override {
    const std::lock_guard lock(s_.mu);
    s_.locked.erase(name_);
    open_ = false;
  }

  void discard() override {
    const std::lock_guard lock(s_.mu);
    s_.partials.erase(name_);
    s_.locked.erase(name_);
    open_ = false;
  }

  core::Result<core::FileStat> stat(ByteView name, core::Sha256& hasher) override {
    const std::string n(reinterpret_cast<const char*>(name.data), name.size);
    const std::lock_guard lock(s_.mu);
    core::FileStat st;
    auto it = s_.files.find(n);
    if (it == s_.files.end()) return st;
    st.exists = true;
    st.size = it->second.size();
    hasher.update(reinterpret_cast<const std::uint8_t*>(it->second.data()), it->second.size());
    hasher.finish(st.sha256);
    return st;
  }

 private:
  FakeDevice::State& s_;
  std::string name_;
  bool open_ = false;
};

bool send_all(int fd, const std::uint8_t* data, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool flush(int fd, core::Receiver& r) {
  for (ByteView out = r.output(); out.size != 0; out = r.output()) {
    if (!send_all(fd, out.data, out.size)) return false;
    r.output_consumed(out.size);
  }
  return true;
}

/// Waits for fd to become readable or the wake pipe to fire: 1 readable, 0 timeout, -1 stop.
int wait_readable(int fd, int wake, int timeout_ms) {
  pollfd p[2] = {{fd, POLLIN, 0}, {wake, POLLIN, 0}};
  const int r = ::poll(p, 2, timeout_ms);
  if (r < 0) return errno == EINTR ? 0 : -1;
  if (p[1].revents != 0) return -1;
  return p[0].revents != 0 ? 1 : 0;
}

/// Reads exactly n bytes within the deadline.
bool recv_exact(int fd, int wake, std::uint8_t* out, std::size_t n, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (n > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    if (wait_readable(fd, wake, static_cast<int>(left.count())) != 1) return false;
    const ssize_t r = ::recv(fd, out, n, 0);
    if (r <= 0) return false;
    out += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

/// Discards input until the peer closes, the device stops, or 30 s pass.
void drain_until_closed(int fd, int wake) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::uint8_t buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    const int w = wait_readable(fd, wake, 100);
    if (w < 0) return;
    if (w == 0) continue;
    if (::recv(fd, buf, sizeof buf, 0) <= 0) return;
  }
}

}  // namespace

FakeDevice::FakeDevice(Config config) : cfg_(std::move(config)) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  wake_rd_ = pipefd[0];
  wake_wr_ = pipefd[1];
  const auto s = listen_loopback(16, "fake device");
  listen_fd_ = s.fd;
  port_ = s.port;
  acceptor_ = std::thread([this] { accept_loop(); });
}

FakeDevice::~FakeDevice() {
  stopping_ = true;
  const char c = 'x';
  [[maybe_unused]] const auto n = ::write(wake_wr_, &c, 1);
  acceptor_.join();
  {
    const std::lock_guard lock(threads_mu_);
    for (auto& t : threads_) t.join();
  }
  ::close(listen_fd_);
  ::close(wake_rd_);
  ::close(wake_wr_);
}

bool FakeDevice::file(const std::string& name, std::string& content) const {
  const std::lock_guard lock(state_.mu);
  auto it = state_.files.find(name);
  if (it == state_.files.end()) return false;
  content = it->second;
  return true;
}

void FakeDevice::put_file(const std::string& name, std::string content) {
  const std::lock_guard lock(state_.mu);
  state_.files[name] = std::move(content);
}

std::uint64_t FakeDevice::partial_size(const std::string& name) const {
  const std::lock_guard lock(state_.mu);
  auto it = state_.partials.find(name);
  return it == state_.partials.end() ? 0 : it->second.data.size();
}

bool FakeDevice::wait_accepted(int n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(threads_mu_);
  return accepted_cv_.wait_for(lock, timeout, [&] { return accepted_ >= n; });
}

void FakeDevice::accept_loop() {
  while (!stopping_) {
    const int w = wait_readable(listen_fd_, wake_rd_, 1000);
    if (w < 0) return;
    if (w == 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    const std::lock_guard lock(threads_mu_);
    threads_.emplace_back([this, fd] { serve(fd); });
    ++accepted_;
    accepted_cv_.notify_all();
  }
}

void FakeDevice::serve(int fd) {
  if (cfg_.mode == Mode::honest) {
    serve_honest(fd);
  } else {
    serve_rogue(fd);
  }
  ::close(fd);
  ++connections_;
}

void FakeDevice::serve_honest(int fd) {
  MemStorage storage(state_);
  ports::OpenSslCrypto crypto;
  core::ReceiverConfig rc;
  rc.key = ByteView(cfg_.key.data(), cfg_.key.size());
  rc.device_id = ByteView(cfg_.id.data(), cfg_.id.size());
  rc.caps = core::caps::file | core::caps::firmware | core::caps::resume | core::caps::stat | core::caps::reboot;
  if (cfg_.digest_last) rc.caps = static_cast<std::uint16_t>(rc.caps | core::caps::digest_last);
  rc.window = cfg_.window;
  rc.max_size = cfg_.max_size;
  rc.idle_timeout_ms = 10000;
  core::Receiver r(rc, storage, crypto);
  r.start(now_ms());

  const bool cut_here = cfg_.cut_after_bytes != 0 && !cut_done_.exchange(true);
  std::uint64_t total = 0;
  std::vector<std::uint8_t> buf(64 * 1024);
  for (;;) {
    if (!flush(fd, r)) {
      r.peer_closed();
      return;
    }
    if (r.finished()) return;
    const int w = wait_readable(fd, wake_rd_, 20);
    if (w < 0) {
      r.peer_closed();
      return;
    }
    if (w == 1) {
      std::size_t want = buf.size();
      if (cut_here) want = static_cast<std::size_t>(std::min<std::uint64_t>(want, cfg_.cut_after_bytes - total));
      const ssize_t n = ::recv(fd, buf.data(), want, 0);
      if (n <= 0) {
        r.peer_closed();
        return;
      }
      total += static_cast<std::uint64_t>(n);
      bytes_received_ += static_cast<std::uint64_t>(n);
      std::size_t off = 0;
      while (off < static_cast<std::size_t>(n) && !r.finished()) {
        off += r.feed(buf.data() + off, static_cast<std::size_t>(n) - off, now_ms());
        if (!flush(fd, r)) {
          r.peer_closed();
          return;
        }
      }
      if (cut_here && total >= cfg_.cut_after_bytes) {
        r.peer_closed();  // the network "breaks": the transfer is suspended, the socket closed
        return;
      }
    }
    r.tick(now_ms());
  }
}

void FakeDevice::serve_rogue(int fd) {
  if (cfg_.mode == Mode::garbage) {
    static const char kBanner[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    send_all(fd, reinterpret_cast<const std::uint8_t*>(kBanner), sizeof kBanner - 1);
    drain_until_closed(fd, wake_rd_);
    return;
  }
  if (cfg_.mode == Mode::silent) {
    drain_until_closed(fd, wake_rd_);
    return;
  }
  // forged_ready / bad_version: a well-formed HELLO first.
  ports::OpenSslCrypto crypto;
  core::Hello h;
  h.version = cfg_.mode == Mode::bad_version ? 2 : core::kProtocolVersion;
  h.caps = core::caps::file | core::caps::stat;
  h.window = cfg_.window;
  h.max_size = 1 << 30;
  h.free = 1 << 30;
  if (!crypto.random(h.nonce, sizeof h.nonce)) return;
  h.id = ByteView(cfg_.id.data(), cfg_.id.size());
  std::uint8_t out[core::kFrameHeaderSize + core::kMaxControlPayload];
  const std::size_t n = core::encode_hello(h, out, sizeof out);
  if (n == 0 || !send_all(fd, out, n)) return;
  if (cfg_.mode == Mode::forged_ready) {
    std::uint8_t hdr[core::kFrameHeaderSize];
    std::uint8_t payload[core::kMaxControlPayload];
    if (!recv_exact(fd, wake_rd_, hdr, sizeof hdr, std::chrono::seconds(10))) return;
    const std::size_t len = core::get_u16(hdr + 1);
    if (len > sizeof payload || !recv_exact(fd, wake_rd_, payload, len, std::chrono::seconds(10))) return;
    core::Ready ready;
    ready.offset = 0;
    std::fill(std::begin(ready.mac), std::end(ready.mac), std::uint8_t{0x42});
    const std::size_t m = core::encode_ready(ready, out, sizeof out);
    if (m == 0 || !send_all(fd, out, m)) return;
  }
  drain_until_closed(fd, wake_rd_);
}

}  // namespace otter::test
