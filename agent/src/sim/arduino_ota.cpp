// otter-agent --mode arduino-ota: a stock ArduinoOTA device (arduino-esp32's ArduinoOTA + Update), on the wire.
//
// What the device does (ArduinoOTA.cpp, Updater.cpp), and so this simulator:
//   - UDP port 3232. Idle: a datagram "<cmd> <port> <size> <md5>\n" is parsed like ArduinoOTA's parseInt() /
//     readStringUntil(); cmd other than 0 (U_FLASH) or 100 (U_SPIFFS), or an MD5 that is not 32 characters, is
//     ignored without an answer. No password: answers "OK" and starts the update. Password: answers "AUTH <nonce>"
//     and waits for "200 <cnonce> <response>\n" (anything else -> idle, silently; cnonce or response of the wrong
//     length -> idle, silently); right -> "OK" and the update, wrong -> "Authentication Failed" and idle.
//   - The update: Update.begin(size) (size 0 or larger than --max-size: "Bad Size Given", logged, no connection, as
//     the device), then a TCP connection to the address the last datagram came from, at the invitation's port.
//     Loop until `size` bytes were written: wait up to 1000 ms for data; on silence re-send the last count (only if
//     something was written, at most 3 times in a row), then give up ("Receive Failed": no text, connection closed,
//     update aborted); otherwise read at most 1460 bytes, write them, answer the count written as decimal ASCII
//     (no delimiter). The peer closing ends the loop early.
//   - Update.write() gathers 4096-byte flash sectors; the first one written checks a firmware image's first byte
//     (cmd 0 only): not 0xE9 (ESP_IMAGE_HEADER_MAGIC) -> "Decryption error" (cores with the OTA decryption, in its
//     default auto mode, take it for an encrypted image and have no key). Any Update error ends the loop at once
//     (the write is not acknowledged), and Update.end() reports it.
//   - Update.end(): the error, else incomplete -> "Aborted", MD5 differs -> "MD5 Check Failed" (Update.printError:
//     the text and CRLF, then the connection is closed), else "OK" and the device reboots. The image is written to
//     ROOT/.<name>.XXXXXX and renamed to ROOT/firmware.bin (cmd 0) or ROOT/filesystem.bin (cmd 100) only then: the
//     old image stays otherwise.
//   - One session at a time: datagrams that arrive during an update wait in the socket buffer, as on the device.
// Single-threaded, plain POSIX sockets and poll(2); SIGINT / SIGTERM (signalfd) end it with status 0.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "listen.hpp"
#include "otter/common/arduino_ota_auth.hpp"
#include "otter/common/unique_fd.hpp"
#include "simulators.hpp"

namespace otter::agent::sim {
namespace {

namespace aota = otter::arduino_ota;

constexpr int kReadTimeoutMs = 1000;          ///< ArduinoOTA's _ota_timeout
constexpr unsigned kReAcks = 3;               ///< re-sent counts before "Receive Failed"
constexpr int kConnectTimeoutMs = 3000;       ///< NetworkClient's default connect timeout
constexpr std::uint64_t kFlashSector = 4096;  ///< SPI_FLASH_SEC_SIZE: Update's write buffer
constexpr std::uint8_t kImageMagic = 0xE9;    ///< ESP_IMAGE_HEADER_MAGIC
/// Update's error text for a firmware image without the magic byte (UPDATE_ERROR_DECRYPT on cores >= 2.0.x;
/// cores before the OTA decryption said "Wrong Magic Byte").
constexpr std::string_view kNoMagicError = "Decryption error";

/// A datagram read the way ArduinoOTA reads it (peek/read over the packet).
class Packet {
 public:
  explicit Packet(std::string_view data) : data_(data) {}
  int peek() const { return pos_ < data_.size() ? static_cast<unsigned char>(data_[pos_]) : -1; }
  int read() { return pos_ < data_.size() ? static_cast<unsigned char>(data_[pos_++]) : -1; }
  /// ArduinoOTAClass::parseInt(): skips spaces, up to 15 digits, atoi.
  long parse_int() {
    while (peek() == ' ') read();
    std::string digits;
    while (digits.size() < 15) {
      const int c = peek();
      if (c < '0' || c > '9') return std::atol(digits.c_str());
      digits.push_back(static_cast<char>(read()));
    }
    return 0;
  }
  /// ArduinoOTAClass::readStringUntil(): stops at `end`, the end of the packet or a NUL byte.
  std::string read_until(char end) {
    std::string out;
    for (;;) {
      const int c = read();
      if (c <= 0 || c == end) return out;
      out.push_back(static_cast<char>(c));
    }
  }

 private:
  std::string_view data_;
  std::size_t pos_ = 0;
};

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

class Device {
 public:
  Device(const Options& opts, const std::string& password, int udp, int sigfd)
      : opts_(opts), udp_(udp), sigfd_(sigfd) {
    if (password.empty()) return;
    if (opts.ota_auth == "md5") {
      scheme_ = aota::AuthScheme::md5;
      password_hash_ = aota::md5_hex(password);
    } else {
      scheme_ = aota::AuthScheme::pbkdf2_sha256;
      password_hash_ = opts.ota_auth == "sha256-md5hash" ? aota::md5_hex(password) : aota::sha256_hex(password);
    }
  }

  /// Serves until a signal: 0, or 1 on a fatal socket error.
  int serve() {
    std::array<char, 1500> buf{};
    for (;;) {
      std::array<pollfd, 2> fds{{{udp_, POLLIN, 0}, {sigfd_, POLLIN, 0}}};
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        spdlog::error("poll: {}", std::strerror(errno));
        return 1;
      }
      if (fds[1].revents != 0) return shutdown();
      if ((fds[0].revents & POLLIN) == 0) continue;
      sockaddr_storage from{};
      socklen_t from_len = sizeof from;
      const ssize_t n = ::recvfrom(udp_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == ECONNREFUSED) continue;
        spdlog::error("recvfrom: {}", std::strerror(errno));
        return 1;
      }
      on_datagram(std::string_view(buf.data(), static_cast<std::size_t>(n)), from, from_len);
      if (stop_) return shutdown();
    }
  }

 private:
  enum class State { idle, wait_auth };

  int shutdown() {
    spdlog::info("signal received, shutting down");
    return 0;
  }

  void reply(std::string_view text, const sockaddr_storage& to, socklen_t to_len) {
    if (::sendto(udp_, text.data(), text.size(), 0, reinterpret_cast<const sockaddr*>(&to), to_len) < 0) {
      spdlog::warn("arduino-ota: answering {}: {}", address_text(to), std::strerror(errno));
    }
  }

  void on_datagram(std::string_view data, const sockaddr_storage& from, socklen_t from_len) {
    Packet p(data);
    if (state_ == State::idle) {
      const long cmd = p.parse_int();
      if (cmd != aota::kUpdateFlash && cmd != aota::kUpdateSpiffs) {
        spdlog::debug("arduino-ota: ignored a datagram from {} (command {})", address_text(from), cmd);
        return;
      }
      cmd_ = static_cast<unsigned>(cmd);
      ota_port_ = p.parse_int();
      size_ = p.parse_int();
      p.read();
      md5_ = trim(p.read_until('\n'));
      if (md5_.size() != 32) {
        spdlog::warn("arduino-ota: bad md5 length");
        return;
      }
      spdlog::info("arduino-ota: invitation from {}: {} image, {} bytes, md5 {}, port {}", address_text(from),
                   cmd_ == aota::kUpdateFlash ? "firmware" : "filesystem", size_, md5_, ota_port_);
      if (!password_hash_.empty()) {
        nonce_ = aota::random_hex(scheme_ == aota::AuthScheme::md5 ? 32 : 64);
        reply("AUTH " + nonce_, from, from_len);
        state_ = State::wait_auth;
        return;
      }
      reply("OK", from, from_len);
      run_update(from, from_len);
      return;
    }

    // wait_auth
    state_ = State::idle;
    const long cmd = p.parse_int();
    if (cmd != aota::kUpdateAuth) {
      spdlog::warn("arduino-ota: {} was expected, got {} instead", aota::kUpdateAuth, cmd);
      return;
    }
    p.read();
    const std::string cnonce = p.read_until(' ');
    const std::string response = p.read_until('\n');
    const std::size_t want = scheme_ == aota::AuthScheme::md5 ? 32 : 64;
    if (cnonce.size() != want || response.size() != want) {
      spdlog::warn("arduino-ota: auth param fail");
      return;
    }
    if (aota::auth_response(scheme_, password_hash_, nonce_, cnonce) != response) {
      spdlog::warn("arduino-ota: Authentication Failed (from {})", address_text(from));
      reply("Authentication Failed", from, from_len);
      return;
    }
    reply("OK", from, from_len);
    run_update(from, from_len);
  }

  /// Connects to the pusher: the socket, or -1 (logged).
  int connect_back(sockaddr_storage to, socklen_t to_len) {
    if (to.ss_family == AF_INET) {
      reinterpret_cast<sockaddr_in*>(&to)->sin_port = htons(static_cast<std::uint16_t>(ota_port_));
    } else {
      reinterpret_cast<sockaddr_in6*>(&to)->sin6_port = htons(static_cast<std::uint16_t>(ota_port_));
    }
    const int fd = ::socket(to.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), to_len) != 0 && errno != EINPROGRESS) {
      spdlog::error("arduino-ota: connect to {}: {}", address_text(to), std::strerror(errno));
      ::close(fd);
      return -1;
    }
    pollfd pfd{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (::poll(&pfd, 1, kConnectTimeoutMs) != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
        err != 0) {
      spdlog::error("arduino-ota: connect to {}: {}", address_text(to), err != 0 ? std::strerror(err) : "timed out");
      ::close(fd);
      return -1;
    }
    const int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    return fd;
  }

  static void send_text(int fd, std::string_view text) {
    if (::send(fd, text.data(), text.size(), MSG_NOSIGNAL) < 0) {
      spdlog::warn("arduino-ota: failed to respond: {}", std::strerror(errno));
    }
  }

  /// Update.write() of `n` bytes at `offset` of a `size`-byte image into `fd`: nullopt, or Update's error text.
  /// Update gathers the image in 4096-byte flash sectors; the first sector's write (when more than 4096 bytes have
  /// come, or the whole image if shorter) checks a firmware image's first byte (U_FLASH only, not U_SPIFFS): an ESP32
  /// application image starts with ESP_IMAGE_HEADER_MAGIC, 0xE9. Otherwise the current cores (with the OTA
  /// decryption of arduino-esp32 2.x and 3.x, in its default "auto" mode and no key set) take the image for an
  /// encrypted one and fail with "Decryption error"; the write returns 0 although earlier writes were acknowledged.
  [[nodiscard]] std::optional<std::string> update_write(const std::uint8_t* data, std::size_t n, std::uint64_t offset,
                                                        std::uint64_t size, int fd) {
    if (n > size - offset) return "Not Enough Space";  // more than announced
    if (offset == 0) first_byte_ = data[0];
    const bool first_sector_flush = offset <= kFlashSector && (offset + n > kFlashSector || offset + n == size);
    if (first_sector_flush && cmd_ == aota::kUpdateFlash && first_byte_ != kImageMagic) {
      spdlog::error("arduino-ota: the image starts with 0x{:02x}, not 0x{:02x}: not an application image",
                    first_byte_, kImageMagic);
      return std::string(kNoMagicError);
    }
    if (::pwrite(fd, data, n, static_cast<off_t>(offset)) != static_cast<ssize_t>(n)) {
      spdlog::error("arduino-ota: writing the image: {}", std::strerror(errno));
      return "Flash Write Failed";
    }
    return std::nullopt;
  }

  /// ArduinoOTAClass::_runUpdate() with Update writing into a temporary file.
  void run_update(const sockaddr_storage& from, socklen_t from_len) {
    if (size_ <= 0 || (opts_.max_size != 0 && static_cast<std::uint64_t>(size_) > opts_.max_size)) {
      spdlog::error("arduino-ota: Begin ERROR: Bad Size Given ({} bytes)", size_);
      return;
    }
    const std::string final_name = cmd_ == aota::kUpdateFlash ? "firmware.bin" : "filesystem.bin";
    const UniqueFd sock(connect_back(from, from_len));
    if (sock.get() < 0) return;
    std::string tmp = opts_.root + "/." + final_name + ".XXXXXX";
    const UniqueFd out(::mkostemp(tmp.data(), O_CLOEXEC));
    if (out.get() < 0) {
      spdlog::error("arduino-ota: {}: {}", tmp, std::strerror(errno));
      return;  // the device would fail in Update.begin (no partition)
    }
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md5(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    EVP_DigestInit_ex(md5.get(), EVP_md5(), nullptr);
    spdlog::info("arduino-ota: update started, {} bytes into {}", size_, final_name);

    const auto size = static_cast<std::uint64_t>(size_);
    std::uint64_t total = 0;
    std::size_t written = 0;
    unsigned tried = 0;
    // Update's error once it has one. Update then aborts (_abort resets it: isFinished() turns true), so the device's
    // loop ends at once and Update.end() reports the error.
    std::optional<std::string> update_error;
    std::array<std::uint8_t, aota::kDeviceReadSize> buf{};
    bool receive_failed = false;
    while (total < size && !update_error) {
      std::array<pollfd, 2> fds{{{sock.get(), POLLIN, 0}, {sigfd_, POLLIN, 0}}};
      const int pr = ::poll(fds.data(), fds.size(), kReadTimeoutMs);
      if (pr < 0 && errno == EINTR) continue;
      if (fds[1].revents != 0) {
        stop_ = true;
        ::unlink(tmp.c_str());
        return;
      }
      if (pr == 0) {
        if (written != 0 && tried++ < kReAcks) {
          spdlog::info("arduino-ota: Try[{}]: {}", tried, written);
          send_text(sock.get(), std::to_string(written));
          continue;
        }
        receive_failed = true;
        break;
      }
      const ssize_t r = ::recv(sock.get(), buf.data(), buf.size(), 0);
      if (r <= 0) break;  // the peer closed (or the connection broke): client.connected() is false
      tried = 0;
      const auto n = static_cast<std::size_t>(r);
      update_error = update_write(buf.data(), n, total, size, out.get());
      if (update_error) {
        written = 0;  // Update.write() returned 0: no count is sent
        spdlog::error("arduino-ota: Write ERROR: {}", *update_error);
        break;
      }
      EVP_DigestUpdate(md5.get(), buf.data(), n);
      written = n;
      send_text(sock.get(), std::to_string(written));
      total += n;
    }

    if (receive_failed) {  // Update.abort(), the connection is dropped without a word
      spdlog::error("arduino-ota: Receive Failed after {} of {} bytes", total, size);
      ::unlink(tmp.c_str());
      return;
    }
    // Update.end()
    std::string error;
    if (update_error) {
      error = *update_error;
    } else if (total < size) {
      error = "Aborted";
      spdlog::error("arduino-ota: premature end: {}/{}", total, size);
    } else {
      std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
      unsigned int len = 0;
      EVP_DigestFinal_ex(md5.get(), md.data(), &len);
      std::string hex;
      for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
      std::string want = md5_;
      for (char& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (hex != want) {
        error = "MD5 Check Failed";
      } else if (::fsync(out.get()) != 0 || ::rename(tmp.c_str(), (opts_.root + "/" + final_name).c_str()) != 0) {
        error = "Could Not Activate The Firmware";
        spdlog::error("arduino-ota: storing {}: {}", final_name, std::strerror(errno));
      }
    }
    if (!error.empty()) {
      spdlog::error("arduino-ota: Update ERROR: {}", error);
      send_text(sock.get(), error + "\r\n");  // Update.printError(client)
      ::unlink(tmp.c_str());
      return;
    }
    if (const UniqueFd dir(::open(opts_.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); dir.get() >= 0) {
      ::fsync(dir.get());
    }
    send_text(sock.get(), "OK");
    spdlog::info("arduino-ota: update of {} bytes complete, {} stored; rebooting", size, final_name);
  }

  const Options& opts_;
  int udp_;
  int sigfd_;
  aota::AuthScheme scheme_ = aota::AuthScheme::pbkdf2_sha256;
  std::string password_hash_;  // empty: no password

  State state_ = State::idle;
  unsigned cmd_ = 0;
  long ota_port_ = 0;
  long size_ = 0;
  std::string md5_;
  std::string nonce_;
  std::uint8_t first_byte_ = 0;
  bool stop_ = false;
};

}  // namespace

int run_arduino_ota(const Options& opts, const std::string& password) {
  if (!make_root(opts)) return 1;
  auto udp = listen_socket(opts, SOCK_DGRAM);
  if (!udp) return start_failed(udp.error());
  const UniqueFd sfd = stop_signals();
  if (sfd.get() < 0) return 1;
  if (!password.empty()) {
    spdlog::info("arduino-ota: password set ({} scheme)", opts.ota_auth);
  }
  announce(opts, udp->shown);
  Device device(opts, password, udp->fd.get(), sfd.get());
  return device.serve();
}

}  // namespace otter::agent::sim
