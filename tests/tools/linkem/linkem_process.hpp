// Test helpers for linkem: the binary as a real process (port 0, its listening line parsed), its per-connection
// lines parsed, and small loopback servers (a sink that counts, an echo) on threads of the test.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <poll.h>

#include "otter/test/bin.hpp"
#include "otter/test/process.hpp"
#include "otter/test/tcp.hpp"

namespace otter::test {

inline std::string linkem_bin() { return bin_path("linkem"); }

/// "linkem: listening on 127.0.0.1:PORT -> 127.0.0.1:Q" -> PORT.
inline std::optional<std::uint16_t> parse_linkem_listening(std::string_view line) {
  constexpr std::string_view kPrefix = "linkem: listening on ";
  if (line.rfind(kPrefix, 0) != 0) return std::nullopt;
  line.remove_prefix(kPrefix.size());
  const auto arrow = line.find(" -> ");
  if (arrow == std::string_view::npos) return std::nullopt;
  const auto addr = line.substr(0, arrow);
  const auto colon = addr.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  unsigned port = 0;
  const auto p = addr.substr(colon + 1);
  const auto r = std::from_chars(p.data(), p.data() + p.size(), port);
  if (r.ec != std::errc() || r.ptr != p.data() + p.size() || port == 0 || port > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(port);
}

/// The value of "KEY=NUMBER" in a line, if present.
inline std::optional<std::uint64_t> line_field(std::string_view line, std::string_view key) {
  const std::string needle = " " + std::string(key) + "=";
  const auto at = line.find(needle);
  if (at == std::string_view::npos) return std::nullopt;
  const auto v = line.substr(at + needle.size());
  std::uint64_t n = 0;
  const auto r = std::from_chars(v.data(), v.data() + v.size(), n);
  if (r.ec != std::errc()) return std::nullopt;
  return n;
}

/// "linkem: conn N closed up=U down=D cut=yes|no [at=A] [error=...]"
struct ConnClosed {
  std::uint64_t index = 0;
  std::uint64_t up = 0;
  std::uint64_t down = 0;
  bool cut = false;
  std::optional<std::uint64_t> at;
  std::string line;
};

inline std::optional<ConnClosed> parse_closed_line(std::string_view line) {
  constexpr std::string_view kPrefix = "linkem: conn ";
  if (line.rfind(kPrefix, 0) != 0 || line.find(" closed ") == std::string_view::npos) return std::nullopt;
  ConnClosed c;
  const auto idx = line.substr(kPrefix.size());
  if (std::from_chars(idx.data(), idx.data() + idx.size(), c.index).ec != std::errc()) return std::nullopt;
  auto up = line_field(line, "up");
  auto down = line_field(line, "down");
  if (!up || !down) return std::nullopt;
  c.up = *up;
  c.down = *down;
  c.cut = line.find(" cut=yes") != std::string_view::npos;
  c.at = line_field(line, "at");
  c.line = std::string(line);
  return c;
}

/// build/bin/linkem --listen 127.0.0.1:0 ARGS..., started and announced.
class LinkemProcess {
 public:
  explicit LinkemProcess(const std::vector<std::string>& args,
                         std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::vector<std::string> argv = {linkem_bin(), "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), args.begin(), args.end());
    proc_ = std::make_unique<Process>(argv);
    auto line =
        proc_->read_line_until([](const std::string& l) { return parse_linkem_listening(l).has_value(); }, timeout);
    if (!line) throw std::runtime_error("linkem did not announce its port\n" + proc_->output());
    port_ = *parse_linkem_listening(*line);
  }

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  Process& process() { return *proc_; }
  [[nodiscard]] std::string output() const { return proc_->output(); }

  /// The next "conn N closed" line (consumes the lines before it).
  std::optional<ConnClosed> wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    auto line =
        proc_->read_line_until([](const std::string& l) { return parse_closed_line(l).has_value(); }, timeout);
    if (!line) return std::nullopt;
    return parse_closed_line(*line);
  }
  /// The next line containing `needle`.
  std::optional<std::string> wait_line(const std::string& needle,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return proc_->read_line_until([&](const std::string& l) { return l.find(needle) != std::string::npos; }, timeout);
  }

 private:
  std::unique_ptr<Process> proc_;
  std::uint16_t port_ = 0;
};

/// A loopback server on a thread: serves connections one after another. Sink mode reads until EOF (or reset), then
/// answers "got N\n" and closes; echo mode sends back everything it reads and closes after EOF. Every connection's
/// byte count and outcome are recorded. Reads are bounded by poll deadlines.
class LoopServer {
 public:
  enum class Mode { sink, echo };
  struct Record {
    std::uint64_t bytes = 0;
    bool reset = false;  ///< ended by an error (RST) rather than EOF
    std::chrono::steady_clock::time_point first_byte{};
    std::chrono::steady_clock::time_point last_byte{};
    std::chrono::steady_clock::duration max_gap{};  ///< longest silence between two reads with data
  };

  explicit LoopServer(Mode mode) : mode_(mode) {
    auto s = listen_loopback(16, "LoopServer");
    fd_ = s.fd;
    port_ = s.port;
    thread_ = std::thread([this] { run(); });
  }
  ~LoopServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  LoopServer(const LoopServer&) = delete;
  LoopServer& operator=(const LoopServer&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  /// The record of the i-th connection (0-based) once it is over; nullopt on timeout.
  std::optional<Record> wait_record(std::size_t i, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return records_.size() > i; })) return std::nullopt;
    return records_[i];
  }

 private:
  void run() {
    while (!stop_) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (stop_) return;
        continue;
      }
      Record rec;
      std::vector<char> buf(64 * 1024);
      for (;;) {
        pollfd p{c, POLLIN, 0};
        if (::poll(&p, 1, 60000) <= 0) {
          rec.reset = true;
          break;
        }
        const ssize_t n = ::recv(c, buf.data(), buf.size(), 0);
        if (n == 0) break;
        if (n < 0) {
          rec.reset = true;
          break;
        }
        const auto now = std::chrono::steady_clock::now();
        if (rec.bytes == 0) rec.first_byte = now;
        if (rec.bytes != 0) rec.max_gap = std::max(rec.max_gap, now - rec.last_byte);
        rec.last_byte = now;
        rec.bytes += static_cast<std::uint64_t>(n);
        if (mode_ == Mode::echo) {
          std::size_t off = 0;
          while (off < static_cast<std::size_t>(n)) {
            const ssize_t w = ::send(c, buf.data() + off, static_cast<std::size_t>(n) - off, MSG_NOSIGNAL);
            if (w <= 0) break;
            off += static_cast<std::size_t>(w);
          }
        }
      }
      if (mode_ == Mode::sink && !rec.reset) {
        const std::string reply = "got " + std::to_string(rec.bytes) + "\n";
        (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
      }
      ::close(c);
      std::lock_guard<std::mutex> lock(mu_);
      records_.push_back(rec);
      cv_.notify_all();
    }
  }

  Mode mode_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Record> records_;
  std::thread thread_;
};

}  // namespace otter::test
