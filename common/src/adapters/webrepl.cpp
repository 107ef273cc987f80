// otter — the MicroPython WebREPL adapter (adapters.hpp): push one file to a stock MicroPython board over its
// WebREPL.
//
// Wire (MicroPython extmod/modwebrepl.c, extmod/modwebsocket.c, micropython-lib webrepl.py):
//   TCP 8266 → WebSocket upgrade (Boost.Beast client; the device matches header names case-sensitively and wants the
//   word "Upgrade" in Connection) → text "Password: " → we send password + "\r" → "\r\nWebREPL connected\r\n>>> " or
//   "\r\nAccess denied\r\n" + close. A second session gets the upgrade (or not, on older firmware) and then a close.
//   PUT: 82-byte request "<2sBBQLH64s" ("WA", 1, 0, offset 0, size u32, name length u16, name NUL-padded) → device
//   opens NAME for writing ("wb", the target itself) and answers "WB" + u16 status 0 → exactly `size` raw bytes →
//   "WB" 0. GET: request type 2 → "WB" 0 → per chunk: we send one byte (0), the device answers u16 length + up to 256
//   bytes, until a zero length → "WB" 0. Nothing is acknowledged before the end, there is no checksum (hence
//   `verify`), and a device that cannot open the file raises inside its REPL hook: it closes the connection without
//   a status.
//
// Frames: the request and the payload go in whole binary frames of at most kFramePayload bytes (header + first
// payload bytes together in the first one). The device reads any 7/16-bit frame incrementally (≤ 512 bytes per read,
// never across a frame unless one byte is left), but closes on a 64-bit length, so frames stay under 64 KiB. Every
// frame but the last carries a data length that is a multiple of 512 (after the request's 82 bytes in the first):
// modwebrepl reads one byte, then the rest of its 512-byte step without blocking, and drops the first byte when that
// second read finds nothing (EAGAIN) — which happens for certain when the byte ended a frame and the next frame has
// not arrived. (The same drop can happen inside a frame when exactly one byte of it has arrived; no sender can
// prevent that, which is one more reason for `verify`.)
//
// Runs as three coroutines on one strand: the work (sequential, with the PUT's writer and status reader running side
// by side), and a watchdog that ends the session with TIMEOUT when nothing moved for idle_timeout (closing the
// socket), or CANCELED when the awaiting coroutine is cancelled.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../net.hpp"
#include "otter/common/adapters_asio.hpp"
#include "otter/common/file_hash.hpp"
#include "otter/common/unique_fd.hpp"

namespace otter::adapters {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

constexpr std::size_t kRequestSize = 82;  ///< "<2sBBQLH64s"
constexpr std::size_t kNameField = 64;
constexpr std::size_t kMaxName = kNameField - 1;  ///< the device reads the name up to its NUL
constexpr std::size_t kMinPassword = 4;           ///< webrepl_setup's rule
constexpr std::size_t kMaxPassword = 9;           ///< the device keeps char[10], NUL-terminated
constexpr std::size_t kDeviceRead = 512;          ///< modwebrepl's file buffer: one read step
/// Bytes per binary frame: a multiple of the device's read step, far under the 16-bit length limit.
constexpr std::size_t kFramePayload = 64 * kDeviceRead;  // 32 KiB
constexpr std::size_t kGetChunk = 256;                   ///< the device's GET chunk
constexpr std::size_t kGetWindow = 16;                   ///< GET chunk requests in flight
constexpr std::chrono::milliseconds kCloseTimeout{2000};

constexpr std::uint8_t kPut = 1;
constexpr std::uint8_t kGet = 2;

std::array<std::uint8_t, kRequestSize> make_request(std::uint8_t op, std::uint32_t size, std::string_view name) {
  std::array<std::uint8_t, kRequestSize> r{};
  r[0] = 'W';
  r[1] = 'A';
  r[2] = op;
  r[3] = 0;  // flags; bytes 4..11: offset (u64, ignored by the device)
  for (int i = 0; i < 4; ++i) r[12 + i] = static_cast<std::uint8_t>(size >> (8 * i));
  r[16] = static_cast<std::uint8_t>(name.size());
  r[17] = static_cast<std::uint8_t>(name.size() >> 8);
  std::memcpy(r.data() + 18, name.data(), name.size());  // NUL-padded to 64 bytes
  return r;
}

Result<void> check_request(const Request& r) {
  if (r.host.empty()) return make_error(ErrorCode::invalid_argument, "no device host given");
  if (r.name.empty()) return make_error(ErrorCode::bad_name, "empty name: WebREPL needs a file name");
  if (r.name.size() > kMaxName) {
    return make_error(
        ErrorCode::bad_name,
        fmt::format("name '{}' is {} bytes long; WebREPL takes at most {} (its request carries the name "
                    "in a 64-byte NUL-terminated field)",
                    r.name, r.name.size(), kMaxName));
  }
  if (r.name.find('\0') != std::string::npos) {
    return make_error(ErrorCode::bad_name, "the name contains a NUL byte, which would end it on the device");
  }
  if (r.password.size() < kMinPassword || r.password.size() > kMaxPassword) {
    return make_error(ErrorCode::invalid_argument,
                      fmt::format("WebREPL passwords are {} to {} characters long; this one has {}", kMinPassword,
                                  kMaxPassword, r.password.size()));
  }
  if (r.password.find_first_of("\r\n") != std::string::npos) {
    return make_error(ErrorCode::invalid_argument, "the WebREPL password must not contain a line break");
  }
  if (r.idle_timeout.count() <= 0 || r.connect_timeout.count() <= 0) {
    return make_error(ErrorCode::invalid_argument, "timeouts must be positive");
  }
  return {};
}

bool is_closed_error(const error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == websocket::error::closed || ec == beast::http::error::end_of_stream ||
         ec == asio::error::connection_aborted || ec == asio::error::not_connected;
}

class Session {
 public:
  Session(tcp::socket sock, const Request& req, const Progress& progress, int fd, std::uint64_t size)
      : ws_(std::move(sock)),
        req_(req),
        progress_(progress),
        fd_(fd),
        size_(size),
        idle_(req.idle_timeout),
        last_activity_(Clock::now()) {}

  asio::awaitable<Result<Outcome>> run() {
    co_await (work() || watchdog());
    if (error_) co_return tl::unexpected(*error_);
    Outcome out;
    out.size = size_;
    out.bytes_sent = bytes_sent_;
    out.confirmed = confirmed_;
    out.verified = verified_;
    out.device_message = fmt::format("WB status {}", final_status_);
    co_return out;
  }

 private:
  enum class Phase { handshake, prompt, login, put, get, closing };

  void touch() { last_activity_ = Clock::now(); }

  void close_socket() {
    error_code ignored;
    beast::get_lowest_layer(ws_).close(ignored);
  }

  void fail(ErrorCode code, std::string message) {
    if (!error_) error_ = Error(code, std::move(message));
    close_socket();
  }

  /// Maps a transport error to the session's error, by what was going on.
  void transport_failed(const error_code& ec) {
    if (error_ || phase_ == Phase::closing) return;
    if (timed_out_) {
      fail(ErrorCode::timeout, fmt::format("the device was silent for {} ({})", net::seconds_text(idle_), doing()));
      return;
    }
    if (canceled_ || ec == asio::error::operation_aborted) {
      fail(ErrorCode::canceled, "transfer canceled");
      return;
    }
    const std::string why = ec.message();
    const bool closed = is_closed_error(ec);
    switch (phase_) {
      case Phase::handshake:
        if (closed) {
          fail(ErrorCode::busy,
               fmt::format("another WebREPL session is open: the device closed the connection during "
                           "the WebSocket upgrade ({}); a stock WebREPL serves one session at a time",
                           why));
        } else {
          fail(ErrorCode::protocol,
               fmt::format("WebSocket upgrade refused ({}): is this a MicroPython WebREPL?", why));
        }
        return;
      case Phase::prompt:
        if (closed && text_.empty()) {
          fail(ErrorCode::busy,
               "another WebREPL session is open: the device accepted the WebSocket and closed it without a password "
               "prompt; a stock WebREPL serves one session at a time");
        } else {
          fail(ErrorCode::connection_closed,
               fmt::format("connection lost while waiting for the password prompt ({})", why));
        }
        return;
      case Phase::login:
        fail(ErrorCode::connection_closed, fmt::format("connection lost during the WebREPL login ({})", why));
        return;
      case Phase::put:
        if (!opened_) {
          fail(ErrorCode::connection_closed,
               fmt::format(
                   "the connection closed after the PUT request for '{}' before the device confirmed opening "
                   "it ({}): a stock WebREPL does this when it cannot open the file (missing directory, "
                   "read-only or full file system), or the link broke; the device may hold an empty or partial "
                   "'{}'",
                   req_.name, why, req_.name));
        } else {
          fail(ErrorCode::connection_closed,
               fmt::format("connection lost after {} of {} bytes ({}); WebREPL writes the target directly, so the "
                           "device may now hold a partial '{}': push it again",
                           bytes_sent_, size_, why, req_.name));
        }
        return;
      case Phase::get:
        fail(ErrorCode::connection_closed,
             fmt::format("connection lost while reading '{}' back for verification ({}); the device confirmed the "
                         "write, but the file was not checked",
                         req_.name, why));
        return;
      case Phase::closing:
        return;
    }
  }

  [[nodiscard]] const char* doing() const {
    switch (phase_) {
      case Phase::handshake:
        return "during the WebSocket upgrade; a WebREPL upgrades one connection at a time and waits without a "
               "timeout for each request, so another client that connected and sent nothing holds it until it "
               "closes; or this is not a WebREPL";
      case Phase::prompt:
        return "waiting for the password prompt";
      case Phase::login:
        return "waiting for the login result";
      case Phase::put:
        return opened_ ? "during the upload; the device may hold a partial file" : "waiting for the PUT answer";
      case Phase::get:
        return "reading the file back";
      case Phase::closing:
        break;
    }
    return "closing";
  }

  asio::awaitable<void> watchdog() {
    const bool expired = co_await net::idle_expired(last_activity_, idle_);
    if (done_) co_return;
    if (expired) {
      timed_out_ = true;
    } else {  // the awaiting coroutine was cancelled
      canceled_ = true;
    }
    close_socket();
  }

  /// Reads one message: text goes to text_ (REPL output), binary to bin_. False on error (recorded).
  asio::awaitable<bool> read_message() {
    buffer_.clear();
    auto [ec, n] = co_await ws_.async_read(buffer_, kUse);
    if (ec) {
      transport_failed(ec);
      co_return false;
    }
    touch();
    std::string data = beast::buffers_to_string(buffer_.data());
    if (ws_.got_text()) {
      text_ += data;
    } else {
      bin_ += data;
    }
    co_return true;
  }

  /// Waits until bin_ holds n bytes.
  asio::awaitable<bool> need_binary(std::size_t n) {
    while (bin_.size() < n) {
      if (error_) co_return false;
      const bool ok = co_await read_message();
      if (!ok) co_return false;
    }
    co_return !error_.has_value();
  }

  asio::awaitable<bool> write_frame(asio::const_buffer data, bool text) {
    ws_.text(text);
    auto [ec, n] = co_await ws_.async_write(data, kUse);
    if (ec) {
      transport_failed(ec);
      co_return false;
    }
    touch();
    co_return true;
  }

  /// "WB" + u16 LE status.
  asio::awaitable<std::optional<std::uint16_t>> read_status() {
    if (!co_await need_binary(4)) co_return std::nullopt;
    if (bin_[0] != 'W' || bin_[1] != 'B') {
      fail(ErrorCode::protocol, fmt::format("expected a WebREPL status (\"WB\"), got bytes {:02x} {:02x}",
                                            static_cast<unsigned>(static_cast<std::uint8_t>(bin_[0])),
                                            static_cast<unsigned>(static_cast<std::uint8_t>(bin_[1]))));
      co_return std::nullopt;
    }
    const auto status =
        static_cast<std::uint16_t>(static_cast<std::uint8_t>(bin_[2]) | (static_cast<std::uint8_t>(bin_[3]) << 8));
    bin_.erase(0, 4);
    co_return status;
  }

  asio::awaitable<void> work() {
    co_await session();
    done_ = true;
  }

  asio::awaitable<void> session() {
    // Upgrade. The device looks for the exact header names and for "Upgrade" (capitalised) in Connection.
    phase_ = Phase::handshake;
    ws_.set_option(websocket::stream_base::decorator([](websocket::request_type& r) {
      r.set(beast::http::field::connection, "Upgrade");
      r.set(beast::http::field::user_agent, "otter");
    }));
    ws_.auto_fragment(false);
    ws_.write_buffer_bytes(kFramePayload + kRequestSize);
    ws_.read_message_max(std::size_t{1024} * 1024);
    {
      auto [ec] = co_await ws_.async_handshake(format_endpoint(req_.host, req_.port), "/", kUse);
      if (ec) {
        transport_failed(ec);
        co_return;
      }
      touch();
    }

    // Login.
    phase_ = Phase::prompt;
    while (text_.find("Password: ") == std::string::npos) {
      if (!co_await read_message()) co_return;
    }
    phase_ = Phase::login;
    text_.clear();
    const std::string line = req_.password + "\r";
    if (!co_await write_frame(asio::buffer(line), true)) co_return;
    for (;;) {
      if (text_.find("Access denied") != std::string::npos) {
        fail(ErrorCode::auth_failed, "Access denied: wrong WebREPL password");
        co_return;
      }
      if (text_.find("WebREPL connected") != std::string::npos) break;
      if (!co_await read_message()) {
        if (error_ && error_->code == ErrorCode::connection_closed &&
            text_.find("Access denied") != std::string::npos)
          error_ = Error(ErrorCode::auth_failed, "Access denied: wrong WebREPL password");
        co_return;
      }
    }
    spdlog::debug("webrepl: logged in to {}", req_.host);

    // PUT: the request, then the content, while the statuses are read.
    phase_ = Phase::put;
    bin_.clear();
    co_await (put_writer() && put_reader());
    if (error_) co_return;

    if (req_.verify) {
      phase_ = Phase::get;
      co_await read_back();
      if (error_) co_return;
    }

    // A WebSocket close: the device answers it and ends the session (frees its single slot).
    phase_ = Phase::closing;
    co_await (close_websocket() || close_guard());
  }

  asio::awaitable<void> close_websocket() { co_await ws_.async_close(websocket::close_code::normal, kUse); }

  /// Bounds the closing handshake: the result is known already.
  asio::awaitable<void> close_guard() {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(kCloseTimeout);
    auto [ec] = co_await timer.async_wait(kUse);
    if (!ec) close_socket();
  }

  asio::awaitable<void> put_writer() {
    std::vector<std::uint8_t> frame(kFramePayload);
    const auto request = make_request(kPut, static_cast<std::uint32_t>(size_), req_.name);
    std::memcpy(frame.data(), request.data(), request.size());
    std::size_t head = request.size();
    std::uint64_t offset = 0;
    if (progress_) progress_(0, size_);
    for (;;) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size_ - offset, kFramePayload - head));
      if (n != 0) {
        if (auto r = pread_exact(fd_, frame.data() + head, n, offset); !r) {
          fail(r.error().code, r.error().message);
          co_return;
        }
      }
      if (error_) co_return;
      const bool ok = co_await write_frame(asio::buffer(frame.data(), head + n), false);
      if (!ok) co_return;
      offset += n;
      bytes_sent_ = offset;
      if (progress_ && n != 0) progress_(bytes_sent_, size_);
      head = 0;
      if (offset >= size_) co_return;
    }
  }

  asio::awaitable<void> put_reader() {
    auto opened = co_await read_status();
    if (!opened) co_return;
    if (*opened != 0) {
      fail(ErrorCode::storage,
           fmt::format("the device refused to open '{}' for writing (status {})", req_.name, *opened));
      co_return;
    }
    opened_ = true;
    auto final = co_await read_status();
    if (!final) co_return;
    final_status_ = *final;
    if (*final != 0) {
      fail(ErrorCode::storage, fmt::format("the device reported status {} after receiving '{}'; it may hold a "
                                           "partial file",
                                           *final, req_.name));
      co_return;
    }
    confirmed_ = true;
  }

  asio::awaitable<void> read_back() {
    bin_.clear();
    const auto request = make_request(kGet, 0, req_.name);
    if (!co_await write_frame(asio::buffer(request), false)) co_return;
    auto opened = co_await read_status();
    if (!opened) co_return;
    if (*opened != 0) {
      fail(ErrorCode::storage,
           fmt::format("the device cannot open '{}' for reading (status {})", req_.name, *opened));
      co_return;
    }
    std::uint64_t received = 0;
    std::size_t in_flight = 0;
    std::array<std::uint8_t, kGetWindow> zeros{};
    std::array<std::uint8_t, kGetChunk> local{};
    for (;;) {
      // Never ask for more chunks than the device still sends (a stray request byte would start a new request):
      // at least ceil(left / 256) data chunks and the final empty one remain.
      const std::uint64_t left = size_ > received ? size_ - received : 0;
      const std::uint64_t remaining = (left + kGetChunk - 1) / kGetChunk + 1;
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kGetWindow, remaining));
      if (in_flight < want) {
        if (!co_await write_frame(asio::buffer(zeros.data(), want - in_flight), false)) co_return;
        in_flight = want;
      }
      if (!co_await need_binary(2)) co_return;
      const std::size_t len = static_cast<std::uint8_t>(bin_[0]) | (static_cast<std::uint8_t>(bin_[1]) << 8);
      bin_.erase(0, 2);
      --in_flight;
      if (len == 0) break;
      if (len > kGetChunk) {
        fail(ErrorCode::protocol, fmt::format("the device sent a {}-byte GET chunk (at most {})", len, kGetChunk));
        co_return;
      }
      if (!co_await need_binary(len)) co_return;
      if (received + len > size_) {
        fail(ErrorCode::hash_mismatch,
             fmt::format("read-back of '{}': the device's file is longer than the {} bytes sent", req_.name, size_));
        co_return;
      }
      if (auto r = pread_exact(fd_, local.data(), len, received); !r) {
        fail(r.error().code, r.error().message);
        co_return;
      }
      for (std::size_t i = 0; i < len; ++i) {
        if (static_cast<std::uint8_t>(bin_[i]) != local[i]) {
          fail(ErrorCode::hash_mismatch,
               fmt::format("read-back of '{}' differs from the local file at byte {}", req_.name, received + i));
          co_return;
        }
      }
      bin_.erase(0, len);
      received += len;
    }
    if (received != size_) {
      fail(ErrorCode::hash_mismatch, fmt::format("read-back of '{}': the device's file has {} bytes, {} were sent",
                                                 req_.name, received, size_));
      co_return;
    }
    auto final = co_await read_status();
    if (!final) co_return;
    if (*final != 0) {
      fail(ErrorCode::storage,
           fmt::format("the device reported status {} after reading '{}' back", *final, req_.name));
      co_return;
    }
    verified_ = true;
  }

  websocket::stream<tcp::socket> ws_;
  const Request& req_;
  const Progress& progress_;
  int fd_;
  std::uint64_t size_;
  std::chrono::milliseconds idle_;
  Clock::time_point last_activity_;

  beast::flat_buffer buffer_;
  std::string text_;  ///< text frames (REPL output) not consumed yet
  std::string bin_;   ///< binary bytes not consumed yet
  Phase phase_ = Phase::handshake;
  std::optional<Error> error_;
  bool done_ = false;
  bool timed_out_ = false;
  bool canceled_ = false;
  bool opened_ = false;
  bool confirmed_ = false;
  bool verified_ = false;
  std::uint16_t final_status_ = 0;
  std::uint64_t bytes_sent_ = 0;
};

asio::awaitable<Result<Outcome>> push_on_strand(Request req, Progress progress) {
  try {
    if (req.name.empty()) req.name = std::filesystem::path(req.path).filename().string();
    if (auto r = check_request(req); !r) co_return tl::unexpected(r.error());

    auto input = open_input_file(req.path);
    if (!input) co_return tl::unexpected(input.error());
    const std::uint64_t size = input->size;
    if (size > 0xFFFFFFFFULL) {
      co_return make_error(ErrorCode::too_large,
                           fmt::format("{} is {} bytes; a WebREPL request carries a 32-bit size", req.path, size));
    }

    tcp::socket sock(co_await asio::this_coro::executor);
    if (auto r = co_await net::connect_to(sock, req.host, req.port, req.connect_timeout); !r)
      co_return tl::unexpected(r.error());

    Session session(std::move(sock), req, progress, input->fd.get(), size);
    co_return co_await session.run();
  } catch (const std::exception& e) {
    co_return tl::unexpected(net::exception_error(e));
  }
}

}  // namespace

asio::awaitable<Result<Outcome>> push_webrepl(Request request, Progress progress) {
  if (request.port == 0) request.port = default_port(Protocol::webrepl);
  return net::on_own_strand(push_on_strand(std::move(request), std::move(progress)));
}

}  // namespace otter::adapters
