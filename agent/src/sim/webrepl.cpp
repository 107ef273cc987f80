// otter-agent --mode webrepl: a stock MicroPython WebREPL on the wire (micropython-lib webrepl.py for the listener
// and the HTTP upgrade, extmod/modwebsocket.c for the frames, extmod/modwebrepl.c for the password and file
// transfers).
//
// Listener (webrepl.py): accept; read the request line and the headers line by line; header names are matched
//   case-sensitively ("Sec-WebSocket-Key" any value, "Connection" containing "Upgrade", "Upgrade" equal to
//   "websocket"); anything else gets the small HTML page (HTTP/1.0 200) and a close. Then the 101 reply with the
//   standard accept hash. Only then the session check: while a session is open, the new connection is closed
//   without a word (after its 101).
// Frames (modwebsocket.c): client frames masked or not, 7- or 16-bit lengths; a 64-bit length ends the connection;
//   FIN is not checked (a continuation keeps the previous type); ping/pong are ignored (no pong is sent); a close is
//   answered with 0x88 0x00 and ends the session. Device frames are unmasked, text for the REPL, binary for files.
// Session (modwebrepl.c): "Password: " on connect; every payload byte (text or binary) goes to the password until
//   '\r' or '\n' (at most 10 kept); wrong → "\r\nAccess denied\r\n" and close; right → "\r\nWebREPL connected\r\n>>>
//   ". Then text bytes are REPL input (ignored here: there is no Python) and binary bytes build the 82-byte request;
//   PUT opens ROOT/NAME for writing directly (truncating: a broken transfer leaves a partial file) and answers "WB"
//   0, takes exactly `size` bytes in reads of at most 512, closes the file and answers "WB" 0; GET answers "WB" 0,
//   then for each request byte one binary frame u16 length + at most 256 bytes, a zero length closes the file and is
//   followed by "WB" 0; GET_VER answers three version bytes. A file that cannot be opened raises inside the device's
//   REPL hook, which detaches and closes the connection without any status. The name is the field up to its NUL;
//   with no NUL in the 64 bytes the device's strlen runs into the zero padding that follows the field on an ESP32,
//   so the name is all 64 bytes. The "WA" signature, the offset and the name length are not checked.
// Read steps: one byte, then up to 511 more of the same frame without blocking; when that byte ended its frame and
//   nothing follows yet, the device drops it (EAGAIN) while counting it — reproduced. Not reproduced: the same drop
//   inside a frame when only that one byte had arrived (it depends on TCP segment timing); here the rest is awaited.
// The device has no timeouts: a silent client keeps the session until its connection closes, and a client that
//   connects without sending its request holds the listener (webrepl.py reads the request on a blocking socket in the
//   board's only Python thread): nobody else is upgraded until it closes.
// The password is compared as strcmp does (a NUL byte typed ends it).
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "listen.hpp"
#include "otter/common/unique_fd.hpp"
#include "simulators.hpp"

namespace otter::agent::sim {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

constexpr std::size_t kRequestSize = 82;
constexpr std::size_t kFileBuf = 512;  ///< modwebrepl's filebuf
constexpr std::size_t kGetChunk = 256;
constexpr std::uint8_t kPut = 1;
constexpr std::uint8_t kGet = 2;
constexpr std::uint8_t kGetVer = 3;
constexpr std::array<std::uint8_t, 3> kVersion = {1, 23, 0};  ///< what GET_VER reports (MicroPython 1.23.0)

constexpr std::string_view kPasswordPrompt = "Password: ";
constexpr std::string_view kConnected = "\r\nWebREPL connected\r\n>>> ";
constexpr std::string_view kDenied = "\r\nAccess denied\r\n";

struct Device {
  std::string id;
  std::string root;
  std::string password;
  bool session_open = false;
};

std::string accept_key(std::string_view key) {
  std::string s(key);
  s += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::array<unsigned char, SHA_DIGEST_LENGTH> digest{};
  ::SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest.data());
  std::array<unsigned char, 4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1> out{};
  const int n = ::EVP_EncodeBlock(out.data(), digest.data(), static_cast<int>(digest.size()));
  return {reinterpret_cast<const char*>(out.data()), static_cast<std::size_t>(n)};
}

std::string_view strip(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

/// The device's path for NAME under ROOT: "/" is the device's root, ".." cannot climb above it.
std::filesystem::path device_path(const std::string& root, const std::string& name) {
  std::filesystem::path rel;
  std::string_view rest = name;
  while (!rest.empty()) {
    const auto slash = rest.find('/');
    const std::string_view seg = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (!rel.empty()) rel = rel.parent_path();
      continue;
    }
    rel /= std::string(seg);
  }
  if (rel.empty()) return {};
  return std::filesystem::path(root) / rel;
}

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket sock, Device& dev) : sock_(std::move(sock)), dev_(dev) {
    error_code ec;
    const auto ep = sock_.remote_endpoint(ec);
    peer_ = ec ? std::string("?") : fmt::format("('{}', {})", ep.address().to_string(), ep.port());
  }

  /// webrepl.py's accept_conn() up to the session: the upgrade (or the HTML page), then the one-session check.
  /// False: the connection is over.
  asio::awaitable<bool> accept() {
    const bool upgraded = co_await handshake();
    if (!upgraded) {
      co_await send_html();
      co_return false;
    }
    if (dev_.session_open) {
      spdlog::info("Concurrent WebREPL connection from {} rejected", peer_);
      close();
      co_return false;
    }
    spdlog::info("WebREPL connection from: {}", peer_);
    dev_.session_open = true;
    co_return true;
  }

  /// The session (modwebrepl), after accept() returned true.
  asio::awaitable<void> run_session() {
    co_await session();
    file_.reset();
    close();
    dev_.session_open = false;
    spdlog::info("WebREPL session from {} ended", peer_);
  }

 private:
  void close() {
    error_code ignored;
    sock_.shutdown(tcp::socket::shutdown_both, ignored);
    sock_.close(ignored);
  }

  // ---- socket input, buffered as lwIP would hold it ----

  /// Makes at least one byte available. False on EOF or error.
  asio::awaitable<bool> fill() {
    if (pos_ < len_) co_return true;
    auto [ec, n] = co_await sock_.async_read_some(asio::buffer(in_), kUse);
    if (ec || n == 0) co_return false;
    pos_ = 0;
    len_ = n;
    co_return true;
  }

  asio::awaitable<std::optional<std::string>> read_line() {  // webrepl.py: readline() of the socket
    std::string line;
    for (;;) {
      if (!co_await fill()) co_return line.empty() ? std::nullopt : std::optional<std::string>(line);
      const char c = static_cast<char>(in_[pos_++]);
      line += c;
      if (c == '\n') co_return line;
      if (line.size() > 4096) co_return line;  // a device would run out of memory; end it here
    }
  }

  asio::awaitable<bool> read_exact(std::uint8_t* out, std::size_t n) {
    while (n != 0) {
      if (!co_await fill()) co_return false;
      const std::size_t k = std::min(n, len_ - pos_);
      std::memcpy(out, in_.data() + pos_, k);
      pos_ += k;
      out += k;
      n -= k;
    }
    co_return true;
  }

  asio::awaitable<bool> write_all(const std::string& data) {
    auto [ec, n] = co_await asio::async_write(sock_, asio::buffer(data), kUse);
    co_return !ec;
  }

  // ---- webrepl.py ----

  asio::awaitable<bool> handshake() {
    if (!co_await read_line()) co_return false;  // the request line is skipped, whatever it says
    std::string key;
    bool upgrade = false;
    bool websocket = false;
    for (;;) {
      auto line = co_await read_line();
      if (!line) co_return false;  // EOF in the headers
      if (*line == "\r\n") break;
      const auto colon = line->find(':');
      if (colon == std::string::npos) {  // the device's split raises: the connection is dropped
        close();
        co_return false;
      }
      const std::string_view h = strip(std::string_view(*line).substr(0, colon));
      const std::string_view v = strip(std::string_view(*line).substr(colon + 1));
      if (h == "Sec-WebSocket-Key") {
        key = std::string(v);
      } else if (h == "Connection" && v.find("Upgrade") != std::string_view::npos) {
        upgrade = true;
      } else if (h == "Upgrade" && v == "websocket") {
        websocket = true;
      }
    }
    if (!(upgrade && websocket && !key.empty())) co_return false;
    const std::string reply =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
        accept_key(key) + "\r\n\r\n";
    co_return co_await write_all(reply);
  }

  asio::awaitable<void> send_html() {
    if (!sock_.is_open()) co_return;
    co_await write_all(
        "HTTP/1.0 200 OK\r\n\r\n<base href=\"https://micropython.org/webrepl/\"></base>\r\n"
        "<script src=\"webrepl_content.js\"></script>\r\n");
    close();
  }

  // ---- modwebsocket.c ----

  /// Up to `max` payload bytes of the current data frame (reading the next frame headers as needed; control frames
  /// are consumed). 0: the session is over (EOF, error, close frame, 64-bit length).
  asio::awaitable<std::size_t> ws_read(std::uint8_t* out, std::size_t max) {
    for (;;) {
      if (msg_left_ == 0 && !in_payload_) {
        std::array<std::uint8_t, 2> h{};
        if (!co_await read_exact(h.data(), 2)) co_return 0;
        last_flags_ = h[0];
        if ((h[0] & 0x0f) == 0x0) {
          ws_flags_ = static_cast<std::uint8_t>((ws_flags_ & 0x0f) | (h[0] & 0xf0));
        } else {
          ws_flags_ = h[0];
        }
        mask_ = {};
        mask_pos_ = 0;
        std::size_t sz = h[1] & 0x7f;
        if (sz == 127) {
          spdlog::warn("webrepl: a frame with a 64-bit length; closing as the device does");
          co_return 0;
        }
        if (sz == 126) {
          std::array<std::uint8_t, 2> l{};
          if (!co_await read_exact(l.data(), 2)) co_return 0;
          sz = (static_cast<std::size_t>(l[0]) << 8) | l[1];
        }
        if ((h[1] & 0x80) != 0) {
          const bool ok = co_await read_exact(mask_.data(), 4);
          if (!ok) co_return 0;
        }
        msg_left_ = sz;
        in_payload_ = true;
      }
      const bool control = (last_flags_ & 0x0f) >= 0x8;
      std::size_t n = 0;
      if (msg_left_ != 0) {
        if (!co_await fill()) co_return 0;
        n = std::min({max, msg_left_, len_ - pos_});
        if (control) n = std::min(n, scratch_.size());
        std::uint8_t* dst = control ? scratch_.data() : out;
        for (std::size_t i = 0; i < n; ++i) dst[i] = in_[pos_ + i] ^ mask_[mask_pos_++ & 3];
        pos_ += n;
        msg_left_ -= n;
      }
      if (msg_left_ == 0) {
        in_payload_ = false;
        if (control) {
          if ((last_flags_ & 0x0f) == 0x8) {  // close: answered, then EOF for the REPL hook
            co_await write_all(std::string("\x88\x00", 2));
            co_return 0;
          }
          continue;  // ping / pong: ignored
        }
      }
      if (control) continue;
      if (n != 0) co_return n;
    }
  }

  [[nodiscard]] bool text_frame() const { return (ws_flags_ & 0x0f) == 0x1; }

  asio::awaitable<bool> ws_write(std::string_view data, bool binary) {
    std::string f;
    f += static_cast<char>(binary ? 0x82 : 0x81);
    if (data.size() < 126) {
      f += static_cast<char>(data.size());
    } else {
      f += static_cast<char>(126);
      f += static_cast<char>(data.size() >> 8);
      f += static_cast<char>(data.size() & 0xff);
    }
    f += data;
    co_return co_await write_all(f);
  }

  asio::awaitable<bool> status(std::uint16_t code) {
    const std::array<char, 4> b = {'W', 'B', static_cast<char>(code & 0xff), static_cast<char>(code >> 8)};
    co_return co_await ws_write(std::string_view(b.data(), b.size()), true);
  }

  // ---- modwebrepl.c ----

  asio::awaitable<void> session() {
    if (!co_await ws_write(kPasswordPrompt, false)) co_return;
    std::string typed;
    bool logged_in = false;
    std::array<std::uint8_t, kFileBuf> filebuf{};
    for (;;) {
      std::uint8_t c = 0;  // the REPL hook reads one byte at a time
      if (co_await ws_read(&c, 1) == 0) co_return;
      if (!logged_in) {
        if (c == '\r' || c == '\n') {
          if (std::string_view(typed.c_str()) != dev_.password) {  // strcmp: a NUL byte ends what was typed
            spdlog::info("webrepl: wrong password from {}", peer_);
            co_await ws_write(kDenied, false);
            co_return;
          }
          logged_in = true;
          if (!co_await ws_write(kConnected, false)) co_return;
        } else if (typed.size() < 10) {
          typed += static_cast<char>(c);
        }
        continue;
      }
      if (text_frame()) continue;  // REPL input: no Python here

      if (hdr_to_recv_ != 0) {
        std::size_t at = kRequestSize - hdr_to_recv_;
        hdr_[at++] = c;
        if (--hdr_to_recv_ != 0) {
          const std::size_t n = co_await ws_read(hdr_.data() + at, hdr_to_recv_);
          if (n == 0) co_return;
          hdr_to_recv_ -= n;
          if (hdr_to_recv_ != 0) continue;
        }
        if (!co_await handle_op()) co_return;
        continue;
      }

      if (data_to_recv_ != 0) {
        filebuf[0] = c;
        std::size_t have = 1;
        if (--data_to_recv_ != 0) {
          error_code aec;
          if (!in_payload_ && pos_ == len_ && sock_.available(aec) == 0) {
            // That byte ended its frame and the next frame has not arrived: the device's non-blocking read of the
            // rest fails with EAGAIN and its handler returns without writing the byte it already counted.
            spdlog::warn("webrepl: a data byte ended its frame with nothing behind it: dropped, as modwebrepl does");
            continue;
          }
          const std::size_t want = std::min<std::size_t>(kFileBuf - 1, data_to_recv_);
          const std::size_t n = co_await ws_read(filebuf.data() + 1, want);
          if (n == 0) co_return;
          data_to_recv_ -= static_cast<std::uint32_t>(n);
          have += n;
        }
        if (type_ == kPut) {
          // The device asserts on a failed write, and asserts are compiled out: the data is dropped silently.
          if (file_ && ::write(file_->get(), filebuf.data(), have) != static_cast<ssize_t>(have)) {
            spdlog::warn("webrepl: write failed: {}", std::strerror(errno));
          }
        } else if (type_ == kGet) {
          std::array<char, 2 + kGetChunk> chunk{};
          ssize_t got = file_ ? ::read(file_->get(), chunk.data() + 2, kGetChunk) : 0;
          if (got < 0) got = 0;
          chunk[0] = static_cast<char>(got & 0xff);
          chunk[1] = static_cast<char>(got >> 8);
          if (!co_await ws_write(std::string_view(chunk.data(), 2 + static_cast<std::size_t>(got)), true)) co_return;
          if (got != 0) data_to_recv_ = 1;
        }
        if (!co_await finish_if_done()) co_return;
      }
      // Otherwise (an unknown request type left the device waiting): binary bytes are ignored.
    }
  }

  asio::awaitable<bool> finish_if_done() {
    if (data_to_recv_ != 0) co_return true;
    if (file_ && type_ == kPut) spdlog::info("webrepl: wrote {}", path_.string());
    file_.reset();
    hdr_to_recv_ = kRequestSize;
    co_return co_await status(0);
  }

  /// false: the session ends (the device's open() raised).
  asio::awaitable<bool> handle_op() {
    type_ = hdr_[2];
    if (type_ == kGetVer) {
      hdr_to_recv_ = kRequestSize;
      co_return co_await ws_write(std::string_view(reinterpret_cast<const char*>(kVersion.data()), kVersion.size()),
                                  true);
    }
    const char* fname = reinterpret_cast<const char*>(hdr_.data() + 18);
    const std::string name(fname, strnlen(fname, 64));
    const std::uint32_t size = static_cast<std::uint32_t>(hdr_[12]) | (static_cast<std::uint32_t>(hdr_[13]) << 8) |
                               (static_cast<std::uint32_t>(hdr_[14]) << 16) |
                               (static_cast<std::uint32_t>(hdr_[15]) << 24);
    path_ = device_path(dev_.root, name);
    const int flags = type_ == kPut ? (O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC) : (O_RDONLY | O_CLOEXEC);
    const int raw = path_.empty() ? -1 : ::open(path_.c_str(), flags, 0644);
    if (raw < 0) {
      const int err = path_.empty() ? ENOENT : errno;
      spdlog::info("dupterm: Exception in read() method, deactivating: OSError: [Errno {}] {} (open '{}')", err,
                   std::strerror(err), name);
      co_return false;
    }
    file_ = std::make_unique<UniqueFd>(raw);
    spdlog::info("webrepl: {} '{}' ({} bytes)", type_ == kPut ? "PUT" : (type_ == kGet ? "GET" : "op"), name,
                 type_ == kPut ? size : 0);
    if (!co_await status(0)) co_return false;
    if (type_ == kPut) {
      data_to_recv_ = size;
      co_return co_await finish_if_done();
    }
    if (type_ == kGet) data_to_recv_ = 1;
    co_return true;
  }

  tcp::socket sock_;
  Device& dev_;
  std::string peer_;
  std::array<std::uint8_t, 4096> in_{};
  std::size_t pos_ = 0;
  std::size_t len_ = 0;
  // modwebsocket state
  std::uint8_t ws_flags_ = 0x82;
  std::uint8_t last_flags_ = 0;
  std::size_t msg_left_ = 0;
  bool in_payload_ = false;
  std::array<std::uint8_t, 4> mask_{};
  std::size_t mask_pos_ = 0;
  std::array<std::uint8_t, 128> scratch_{};
  // modwebrepl state
  std::array<std::uint8_t, kRequestSize> hdr_{};
  std::size_t hdr_to_recv_ = kRequestSize;
  std::uint32_t data_to_recv_ = 0;
  std::uint8_t type_ = 0;
  std::unique_ptr<UniqueFd> file_;
  std::filesystem::path path_;
};

/// The device's accept handler reads the HTTP request on a blocking socket with no timeout, in the board's only
/// Python thread: one connection at a time is upgraded, and a client that connects and sends nothing holds the
/// listener until it closes (later clients wait in the backlog). Sessions themselves run side by side with it.
asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, Device& dev) {
  for (;;) {
    auto [ec, sock] = co_await acceptor.async_accept(kUse);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      continue;
    }
    auto conn = std::make_shared<Connection>(std::move(sock), dev);
    const bool upgraded = co_await conn->accept();
    if (!upgraded) continue;
    asio::co_spawn(
        acceptor.get_executor(), [conn]() -> asio::awaitable<void> { co_await conn->run_session(); }, asio::detached);
  }
}

}  // namespace

int run_webrepl(const Options& opts, const std::string& password) {
  if (password.empty()) {
    std::fprintf(stderr,
                 "otter-agent: --mode webrepl needs --password-file (WebREPL is not configured without one)\n");
    return 2;
  }
  if (password.size() > 9) {
    std::fprintf(stderr, "otter-agent: a WebREPL password has at most 9 characters (the device raises ValueError)\n");
    return 2;
  }
  if (password.size() < 4) spdlog::warn("webrepl_setup would refuse a password under 4 characters");
  if (!make_root(opts)) return 1;
  auto listener = listen_socket(opts, SOCK_STREAM, 1);  // webrepl.py: listen(1)
  if (!listener) return start_failed(listener.error());

  Device dev{opts.name, opts.root, password, false};
  asio::io_context io(1);
  tcp::acceptor acceptor(io);
  error_code ec;
  const bool v6 = opts.listen_host.find(':') != std::string::npos;
  acceptor.assign(v6 ? tcp::v6() : tcp::v4(), listener->fd.release(), ec);
  if (ec) {
    std::fprintf(stderr, "otter-agent: cannot listen on %s: %s\n", listener->shown.c_str(), ec.message().c_str());
    return 1;
  }
  const std::string& shown = listener->shown;

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const error_code& sec, int) {
    if (sec) return;
    spdlog::info("signal received, shutting down");
    io.stop();
  });
  asio::co_spawn(io, accept_loop(acceptor, dev), asio::detached);

  announce(opts, shown);
  spdlog::info("WebREPL server started on http://{}/ (MicroPython WebREPL simulator)", shown);
  io.run();
  return 0;
}

}  // namespace otter::agent::sim
