// otter test support — a small blocking TCP client with poll(2) deadlines, for driving a device (or a fake one) by
// hand. Every read takes a timeout; nothing sleeps. Writes use MSG_NOSIGNAL (a closed peer is an error, not SIGPIPE).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace otter::test {

/// One protocol frame as read from the wire (type byte + payload, header stripped).
struct RawFrame {
  std::uint8_t type = 0;
  std::string payload;
};

class TcpClient {
 public:
  enum class Status { ok, eof, timeout, error };

  /// Connects (IPv4 or IPv6 literal, or "localhost"). Throws std::runtime_error on failure or timeout.
  TcpClient(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~TcpClient();
  TcpClient(TcpClient&& other) noexcept;
  TcpClient& operator=(TcpClient&& other) noexcept;
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;

  [[nodiscard]] int fd() const { return fd_; }

  /// Sends everything; false if the connection failed (reset, closed).
  bool send_all(std::string_view data);
  bool send_all(const std::uint8_t* data, std::size_t n);

  /// Reads exactly n bytes into out. eof/error/timeout leave the bytes read so far in out.
  Status read_exact(std::size_t n, std::string& out, std::chrono::milliseconds timeout);
  /// Reads one frame (3-byte header + payload). nullopt on EOF, error or timeout (see last_status()).
  std::optional<RawFrame> read_frame(std::chrono::milliseconds timeout);
  /// Reads and discards until the peer closes (EOF or reset): true if that happened within the timeout.
  bool wait_closed(std::chrono::milliseconds timeout);
  /// Bytes discarded by the last wait_closed() (e.g. frames the peer sent before closing).
  [[nodiscard]] const std::string& discarded() const { return discarded_; }
  [[nodiscard]] Status last_status() const { return last_; }

  /// shutdown(SHUT_WR): the peer reads EOF, we can still read.
  void shutdown_write();
  void close();

 private:
  int fd_ = -1;
  Status last_ = Status::ok;
  std::string discarded_;
};

/// A TCP socket (close-on-exec) bound to 127.0.0.1 on an ephemeral port, listening with `backlog` (only bound, not
/// listening, when backlog < 0). Throws std::runtime_error("WHO: cannot listen: <errno text>").
struct LoopbackSocket {
  int fd = -1;
  std::uint16_t port = 0;
};
LoopbackSocket listen_loopback(int backlog, const std::string& who);

/// A loopback port that refuses connections: bound by this process (so nobody else can take it) but never listening.
class RefusedPort {
 public:
  RefusedPort();  ///< throws std::runtime_error if it cannot bind
  ~RefusedPort();
  RefusedPort(const RefusedPort&) = delete;
  RefusedPort& operator=(const RefusedPort&) = delete;
  [[nodiscard]] std::uint16_t port() const { return port_; }
  /// "127.0.0.1:PORT"
  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

/// Encodes a frame header + payload (for hand-built packets).
std::string make_frame(std::uint8_t type, std::string_view payload);

}  // namespace otter::test
