// otter — the arduino-ota adapter: pushes a firmware or filesystem image to a stock ArduinoOTA device (arduino-esp32)
// the way espota.py does, but pipelined.
//
//   0. a firmware image must start with 0xE9 (ESP_IMAGE_HEADER_MAGIC), or the device's Update refuses it after its
//      first 4 KiB: refused here, before the invitation, unless `force` (check_image_magic);
//   1. open a TCP listener (the device connects back to it);
//   2. UDP invitation "<cmd> <port> <size> <md5hex>\n" to the device (port 3232), re-sent a few times within the
//      connect timeout; the device answers "OK" or "AUTH <nonce>" (32 hex: MD5 scheme, 64 hex: PBKDF2-SHA256
//      scheme); the answer "200 <cnonce> <response>\n" gets "OK" or "Authentication Failed";
//   3. accept the device's connection;
//   4. stream the image without waiting for each acknowledgement (at most kWindow bytes beyond what the device
//      acknowledged). The device reads up to 1460 bytes at a time and answers every read with the number of bytes
//      it wrote, in decimal ASCII with no delimiter ("146014601460..."); AckParser splits them back;
//   5. after the last byte the device checks the MD5 and answers "OK", or Update's error text ("MD5 Check Failed").
//
// Three coroutines run the transfer, raced with `||` as in push_client.cpp: reader (acks and the final text, ends
// on EOF), writer (the window; parks when done), watchdog (the device silent for idle_timeout -> TIMEOUT).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "../net.hpp"
#include "otter/common/adapters_asio.hpp"
#include "otter/common/arduino_ota_auth.hpp"
#include "otter/common/file_hash.hpp"
#include "otter/common/unique_fd.hpp"

namespace otter::adapters {
namespace {

namespace asio = boost::asio;
namespace aota = otter::arduino_ota;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using namespace asio::experimental::awaitable_operators;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

/// Bytes sent beyond the device's acknowledgements. The device reads only as fast as it writes flash; TCP flow
/// control does the rest, this only keeps the queue (and the progress lag) bounded. It must cover the link's
/// bandwidth-delay product: through linkem at 8 Mbit/s and 40 ms RTT (40 KB) a 32 KiB window took 1.5 x the ideal
/// time for 2 MiB, 64-128 KiB took 0.98 x (scripts/bench, docs/benchmarks.md).
constexpr std::uint64_t kWindow = std::uint64_t{128} * 1024;
/// One pread + one async_write.
constexpr std::size_t kWriteChunk = std::size_t{8} * 1024;
/// Invitation re-sends: every connect_timeout / 4, within these bounds (espota: 10 tries, 10 s apart).
constexpr std::chrono::milliseconds kMinInviteInterval{250};
constexpr std::chrono::milliseconds kMaxInviteInterval{2000};
/// ESP_IMAGE_HEADER_MAGIC: the first byte of every ESP32 application image.
constexpr std::uint8_t kImageMagic = 0xE9;
/// Update's flash sector: the magic byte is checked when the first one is written.
constexpr std::uint64_t kFlashSector = 4096;
/// How long the device may take to check the answer to "AUTH" before the invitation is sent again.
constexpr std::chrono::milliseconds kVerdictWait{3000};

using net::seconds_text;

std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(first, last - first + 1));
}

/// Printable form of a device answer for messages.
std::string shown(std::string_view s) {
  std::string out;
  for (const char c : s.substr(0, 120)) {
    if (c >= 0x20 && c < 0x7F) {
      out.push_back(c);
    } else {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    }
  }
  return out;
}

Result<std::string> md5_file(int fd, std::uint64_t size) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr) != 1) {
    return make_error(ErrorCode::internal, "MD5 initialisation failed");
  }
  std::vector<std::uint8_t> buf(std::size_t{256} * 1024);
  for (std::uint64_t off = 0; off < size;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - off));
    if (auto r = pread_exact(fd, buf.data(), n, off); !r) return tl::unexpected(r.error());
    EVP_DigestUpdate(ctx.get(), buf.data(), n);
    off += n;
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md.data(), &len);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
}

// ---------------------------------------------------------------------------------------------------------------
// The device's acknowledgements

/// Splits the device's stream "<n><n>...<n>" + final text. Each n is what one Update.write() took: 1..1460, printed
/// with "%lu" (no leading zero, no delimiter). A read boundary can cut a number ("14" | "60"), several numbers
/// arrive together, and the split is ambiguous in principle ("1460" could be 14 + 60). The parser takes the longest
/// number <= 1460 that does not leave a '0' to start the next one, and holds back a trailing number that could still
/// grow, until more digits, the final text or EOF decide. Whatever follows the first non-digit is the device's final
/// text ("OK", or Update's error text). The caller clamps the sum to what was sent; the final "OK" proves the rest.
class AckParser {
 public:
  void feed(std::string_view data) {
    for (std::size_t i = 0; i < data.size(); ++i) {
      const char c = data[i];
      if (text_mode_) {
        text_.append(data.substr(i));
        return;
      }
      if (c >= '0' && c <= '9') {
        digits_.push_back(c);
        continue;
      }
      drain(true);
      text_mode_ = true;
      text_.append(data.substr(i));
      return;
    }
    drain(false);
  }
  void finish() { drain(true); }

  [[nodiscard]] std::uint64_t acked() const { return acked_; }
  [[nodiscard]] std::uint64_t acks() const { return count_; }
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  void drain(bool final) {
    std::size_t pos = 0;
    while (pos < digits_.size()) {
      if (digits_[pos] == '0') {  // cannot start a count: a stray digit, skip it
        ++pos;
        continue;
      }
      const std::size_t avail = digits_.size() - pos;
      std::size_t take = 0;
      unsigned value = 0;
      for (std::size_t len = std::min<std::size_t>(4, avail); len >= 1; --len) {
        unsigned v = 0;
        for (std::size_t k = 0; k < len; ++k) v = v * 10 + static_cast<unsigned>(digits_[pos + k] - '0');
        if (v > aota::kDeviceReadSize) continue;
        if (len < avail && digits_[pos + len] == '0') continue;  // the next count would start with '0'
        take = len;
        value = v;
        break;
      }
      if (take == 0) {  // unreachable for digit 1..9, kept for safety
        ++pos;
        continue;
      }
      if (!final && take == avail && take < 4 && value * 10 <= aota::kDeviceReadSize) break;  // may still grow
      acked_ += value;
      ++count_;
      pos += take;
    }
    digits_.erase(0, pos);
  }

  std::string digits_;
  std::string text_;
  bool text_mode_ = false;
  std::uint64_t acked_ = 0;
  std::uint64_t count_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// Invitation and authentication (UDP)

/// A UDP receive raced against a timer: {ec, bytes}, ec = timed_out on expiry.
asio::awaitable<std::pair<error_code, std::size_t>> receive_for(udp::socket& sock, std::array<char, 512>& buf,
                                                                Clock::duration timeout) {
  asio::steady_timer timer(sock.get_executor());
  timer.expires_after(timeout);
  auto r = co_await (sock.async_receive(asio::buffer(buf), kUse) || timer.async_wait(kUse));
  if (r.index() == 0) {
    auto [ec, n] = std::get<0>(r);
    co_return std::pair{ec, n};
  }
  auto [tec] = std::get<1>(r);
  if (tec) co_return std::pair{tec, std::size_t{0}};
  co_return std::pair{error_code(asio::error::timed_out), std::size_t{0}};
}

struct Handshake {
  const Request& req;
  std::string device;  // "host:port" for messages
  udp::socket& sock;
  std::string invitation;
  Clock::time_point deadline;
  Clock::duration interval;

  int invitations = 0;
  bool refused = false;  // ICMP port unreachable seen
  error_code last_send_error{};
  bool md5_password_tried = false;  // the PBKDF2 scheme's fallback to an MD5 password hash (espota)

  /// OK once the device accepted the invitation (and the password).
  asio::awaitable<Result<void>> run() {
    std::array<char, 512> buf{};
    bool use_md5_password = false;
    while (Clock::now() < deadline) {
      ++invitations;
      spdlog::debug("arduino-ota: invitation {} to {}: {}", invitations, device, trim(invitation));
      auto [sec, sent] = co_await sock.async_send(asio::buffer(invitation), kUse);
      if (sec == asio::error::operation_aborted) co_return make_error(ErrorCode::canceled, "canceled");
      if (sec) last_send_error = sec;
      const auto until = std::min(deadline, Clock::now() + interval);
      std::optional<std::string> reply;
      while (!reply && Clock::now() < until) {
        auto [ec, n] = co_await receive_for(sock, buf, until - Clock::now());
        if (ec == asio::error::operation_aborted) co_return make_error(ErrorCode::canceled, "canceled");
        if (ec == asio::error::timed_out) break;
        if (ec == asio::error::connection_refused) {  // ICMP port unreachable for an earlier datagram
          refused = true;
          continue;
        }
        if (ec) {
          last_send_error = ec;
          asio::steady_timer t(sock.get_executor());
          t.expires_at(until);
          auto [tec] = co_await t.async_wait(kUse);
          if (tec) co_return make_error(ErrorCode::canceled, "canceled");
          break;
        }
        reply = std::string(buf.data(), n);
      }
      if (!reply) continue;

      const std::string answer = trim(*reply);
      spdlog::debug("arduino-ota: {} answered '{}'", device, shown(answer));
      if (answer == "OK") co_return Result<void>{};
      if (answer.rfind("AUTH", 0) != 0) {
        co_return make_error(ErrorCode::protocol,
                             fmt::format("{} answered the invitation with '{}' (expected OK or AUTH <nonce>): is "
                                         "it an ArduinoOTA device?",
                                         device, shown(answer)));
      }
      const std::string nonce = trim(std::string_view(answer).substr(4));
      if (req.password.empty()) {
        co_return make_error(ErrorCode::auth_failed,
                             fmt::format("device requires a password: {} asked for authentication (AUTH) and no "
                                         "password was given (--password-file)",
                                         device));
      }
      aota::AuthScheme scheme{};
      std::string hash;
      if (nonce.size() == 32) {
        scheme = aota::AuthScheme::md5;
        hash = aota::md5_hex(req.password);
      } else if (nonce.size() == 64) {
        scheme = aota::AuthScheme::pbkdf2_sha256;
        hash = use_md5_password ? aota::md5_hex(req.password) : aota::sha256_hex(req.password);
      } else {
        co_return make_error(ErrorCode::protocol,
                             fmt::format("{} sent a {}-character nonce (expected 32 for the MD5 scheme or 64 for "
                                         "the PBKDF2-SHA256 scheme of arduino-esp32 3.3.1+)",
                                         device, nonce.size()));
      }
      const std::string cnonce = aota::random_hex(nonce.size());
      const std::string answer_line =
          fmt::format("{} {} {}\n", aota::kUpdateAuth, cnonce, aota::auth_response(scheme, hash, nonce, cnonce));
      auto [aec, an] = co_await sock.async_send(asio::buffer(answer_line), kUse);
      if (aec == asio::error::operation_aborted) co_return make_error(ErrorCode::canceled, "canceled");
      // The device derives the key too (10000 PBKDF2 rounds on an ESP32): give it a few seconds. No verdict means
      // the device dropped our answer (e.g. it was meant for an invitation it no longer waits on): invite again.
      const auto verdict_until = std::min(deadline, Clock::now() + std::max<Clock::duration>(interval, kVerdictWait));
      std::optional<std::string> verdict;
      while (!verdict && Clock::now() < verdict_until) {
        auto [ec, n] = co_await receive_for(sock, buf, verdict_until - Clock::now());
        if (ec == asio::error::operation_aborted) co_return make_error(ErrorCode::canceled, "canceled");
        if (ec == asio::error::timed_out) break;
        if (ec) continue;
        verdict = trim(std::string_view(buf.data(), n));
        if (verdict->rfind("AUTH", 0) == 0) verdict.reset();  // a late answer to an earlier invitation
      }
      if (!verdict) continue;  // no verdict: invite again (the device is back in its idle state by now)
      if (*verdict == "OK") co_return Result<void>{};
      if (*verdict == "Authentication Failed") {
        if (scheme == aota::AuthScheme::pbkdf2_sha256 && !use_md5_password) {
          // A 3.3.1+ device may hold an MD5 password hash (setPasswordHash): espota retries with it.
          spdlog::debug("arduino-ota: SHA-256 password hash refused, retrying with the MD5 hash");
          use_md5_password = true;
          md5_password_tried = true;
          continue;
        }
        co_return make_error(ErrorCode::auth_failed,
                             fmt::format("authentication failed: {} rejected the password ({} scheme; it answered "
                                         "'Authentication Failed')",
                                         device, scheme == aota::AuthScheme::md5 ? "MD5" : "PBKDF2-SHA256"));
      }
      co_return make_error(ErrorCode::protocol,
                           fmt::format("{} answered the authentication with '{}'", device, shown(*verdict)));
    }
    std::string extra;
    if (refused) extra = " (ICMP port unreachable: nothing listens on that UDP port)";
    if (last_send_error) extra += fmt::format(" (last error: {})", last_send_error.message());
    co_return make_error(
        ErrorCode::connect_failed,
        fmt::format("no answer from {} to the ArduinoOTA invitation within {} ({} sent){}. Likely causes: wrong "
                    "address or port (ArduinoOTA listens on UDP 3232 unless setPort() changed it), the device is not "
                    "running ArduinoOTA (ArduinoOTA.begin() and ArduinoOTA.handle() in loop()), UDP blocked by a "
                    "firewall on the way, or the device is busy with another update",
                    device, seconds_text(req.connect_timeout), invitations, extra));
  }
};

// ---------------------------------------------------------------------------------------------------------------
// The transfer (TCP)

class Transfer {
 public:
  Transfer(tcp::socket& sock, int fd, std::uint64_t size, std::chrono::milliseconds idle, const Progress& progress)
      : sock_(sock), wake_(sock.get_executor()), fd_(fd), size_(size), idle_(idle), progress_(progress) {}

  asio::awaitable<void> run() {
    last_rx_ = Clock::now();
    co_await (reader() || writer() || watchdog());
  }

  [[nodiscard]] std::uint64_t sent() const { return sent_; }
  [[nodiscard]] std::uint64_t acked() const { return std::min(parser_.acked(), sent_); }
  [[nodiscard]] std::string text() const { return trim(parser_.text()); }
  [[nodiscard]] bool canceled() const { return canceled_; }
  [[nodiscard]] bool timed_out() const { return timed_out_; }
  [[nodiscard]] bool eof() const { return eof_; }
  [[nodiscard]] const error_code& transport_error() const { return transport_error_; }
  [[nodiscard]] const std::optional<Error>& local_error() const { return local_error_; }
  [[nodiscard]] std::uint64_t acks() const { return parser_.acks(); }

 private:
  /// The first coroutine to end decides; the others are then cancelled by `||` and must not overwrite it.
  bool finish() {
    if (over_) return false;
    over_ = true;
    wake_.cancel();
    return true;
  }

  void aborted_or(const error_code& ec) {
    if (!finish()) return;
    if (ec == asio::error::operation_aborted) {
      canceled_ = true;
    } else {
      transport_error_ = ec;
    }
  }

  void report() {
    const std::uint64_t a = acked();
    if (progress_ && a != last_reported_) {
      last_reported_ = a;
      progress_(a, size_);
    }
  }

  asio::awaitable<void> reader() {
    std::array<char, 2048> buf{};
    for (;;) {
      auto [ec, n] = co_await sock_.async_read_some(asio::buffer(buf), kUse);
      if (n > 0) {
        last_rx_ = Clock::now();
        parser_.feed(std::string_view(buf.data(), n));
        report();
        wake_.cancel();
        if (sent_ == size_ && trim(parser_.text()) == "OK") {  // the verdict: no need to wait for the close
          if (finish()) eof_ = true;
          co_return;
        }
      }
      if (ec == asio::error::eof) {
        parser_.finish();
        report();
        if (finish()) eof_ = true;
        co_return;
      }
      if (ec) {
        aborted_or(ec);
        co_return;
      }
    }
  }

  asio::awaitable<void> writer() {
    std::vector<std::uint8_t> chunk(kWriteChunk);
    while (!over_ && sent_ < size_) {
      const std::uint64_t in_flight = sent_ - acked();
      if (in_flight >= kWindow) {
        wake_.expires_at(asio::steady_timer::time_point::max());
        co_await wake_.async_wait(kUse);  // woken by an ack (or cancelled at the end)
        continue;
      }
      const auto n =
          static_cast<std::size_t>(std::min({kWindow - in_flight, size_ - sent_, std::uint64_t{kWriteChunk}}));
      if (auto r = pread_exact(fd_, chunk.data(), n, sent_); !r) {
        if (finish()) local_error_ = r.error();
        co_return;
      }
      auto [ec, w] = co_await asio::async_write(sock_, asio::buffer(chunk.data(), n), kUse);
      sent_ += w;
      if (ec == asio::error::operation_aborted) {
        aborted_or(ec);
        co_return;
      }
      if (ec) {
        // The device stopped taking data: after an Update error it sends its text and closes (with our data unread:
        // a reset). The reader takes the text, then the end of the connection, and decides.
        spdlog::debug("arduino-ota: write failed after {} bytes: {}", sent_, ec.message());
        break;
      }
    }
    // All sent (or the device stopped reading): wait for the reader (the device's final answer) or the watchdog.
    asio::steady_timer park(sock_.get_executor());
    park.expires_at(asio::steady_timer::time_point::max());
    auto [ec] = co_await park.async_wait(kUse);
    aborted_or(ec);
  }

  asio::awaitable<void> watchdog() {
    const bool expired = co_await net::idle_expired(last_rx_, idle_);  // not in the if: GCC 12 miscompiles that
    if (expired) {
      if (finish()) timed_out_ = true;
    } else {
      aborted_or(asio::error::operation_aborted);
    }
  }

  tcp::socket& sock_;
  asio::steady_timer wake_;
  int fd_;
  std::uint64_t size_;
  std::chrono::milliseconds idle_;
  const Progress& progress_;

  AckParser parser_;
  std::uint64_t sent_ = 0;
  std::uint64_t last_reported_ = ~std::uint64_t{0};
  Clock::time_point last_rx_{};
  bool over_ = false;
  bool eof_ = false;
  bool canceled_ = false;
  bool timed_out_ = false;
  error_code transport_error_;
  std::optional<Error> local_error_;
};

/// Update's texts for a firmware image whose first byte is not ESP_IMAGE_HEADER_MAGIC: "Decryption error" on cores
/// with the OTA decryption (2.x, 3.x: the image is taken for an encrypted one, and no key is set), "Wrong Magic Byte"
/// on older cores (or with the decryption compiled out).
bool is_not_an_image_text(const std::string& text) {
  return text.find("Decryption error") != std::string::npos || text.find("Wrong Magic Byte") != std::string::npos;
}

/// Update's error text (Updater.cpp) -> the closest otter code.
ErrorCode code_for_device_text(const std::string& text) {
  if (is_not_an_image_text(text)) return ErrorCode::unsupported_kind;
  if (text.find("MD5 Check Failed") != std::string::npos) return ErrorCode::hash_mismatch;
  if (text.find("Not Enough Space") != std::string::npos) return ErrorCode::no_space;
  if (text.find("Bad Size Given") != std::string::npos) return ErrorCode::too_large;
  if (text.find("Aborted") != std::string::npos || text.find("Stream Read Timeout") != std::string::npos) {
    return ErrorCode::connection_closed;
  }
  return ErrorCode::storage;
}

/// Resolves `host` (numeric or name) for UDP: the first endpoint, or an error message.
asio::awaitable<std::pair<error_code, udp::endpoint>> resolve_udp(const std::string& host, std::uint16_t port,
                                                                  Clock::duration timeout) {
  const auto ex = co_await asio::this_coro::executor;
  udp::resolver resolver(ex);
  asio::steady_timer timer(ex);
  timer.expires_after(timeout);
  auto r = co_await (resolver.async_resolve(host, std::to_string(port), udp::resolver::numeric_service, kUse) ||
                     timer.async_wait(kUse));
  if (r.index() == 1) {
    auto [tec] = std::get<1>(r);
    co_return std::pair{tec ? tec : error_code(asio::error::timed_out), udp::endpoint{}};
  }
  auto [ec, results] = std::get<0>(r);
  if (ec) co_return std::pair{ec, udp::endpoint{}};
  for (const auto& entry : results) {
    if (entry.endpoint().address().is_v4()) co_return std::pair{error_code{}, entry.endpoint()};
  }
  if (results.empty()) co_return std::pair{error_code(asio::error::host_not_found), udp::endpoint{}};
  co_return std::pair{error_code{}, results.begin()->endpoint()};
}

/// A firmware image must start with ESP_IMAGE_HEADER_MAGIC (0xE9), or the device's Update refuses it after the first
/// 4 KiB (see is_not_an_image_text). Checked before inviting: a clear local error instead of the device's puzzling
/// "Decryption error". `force` skips it (an image encrypted for Update.setupCrypt() starts with any byte).
Result<void> check_image_magic(int fd, const std::string& path) {
  std::uint8_t first = 0;
  if (auto r = pread_exact(fd, &first, 1, 0); !r) return tl::unexpected(r.error().with_context(path));
  if (first == kImageMagic) return {};
  return make_error(ErrorCode::unsupported_kind,
                    fmt::format("{} is not an ESP32 application image: it starts with 0x{:02x}, not 0x{:02x} "
                                "(ESP_IMAGE_HEADER_MAGIC), and ArduinoOTA's Update refuses such a firmware after its "
                                "first 4 KiB. Push the sketch's .bin (not the .elf, .hex or a merged image), use "
                                "--kind filesystem for a data-partition image, or --force for an image encrypted "
                                "for Update.setupCrypt()",
                                path, first, kImageMagic));
}

asio::awaitable<Result<Outcome>> push_on_strand(Request req, Progress progress) {
  try {
    if (req.host.empty()) co_return make_error(ErrorCode::invalid_argument, "no device host given");
    if (req.payload == Payload::file) {
      co_return make_error(ErrorCode::invalid_argument,
                           "arduino-ota pushes whole images, not files: use --kind firmware (the sketch, cmd 0) or "
                           "--kind filesystem (a LittleFS/SPIFFS image, cmd 100)");
    }
    if (req.connect_timeout.count() <= 0 || req.idle_timeout.count() <= 0) {
      co_return make_error(ErrorCode::invalid_argument, "timeouts must be positive");
    }
    const std::uint16_t port = req.port != 0 ? req.port : static_cast<std::uint16_t>(aota::kDefaultPort);

    auto input = open_input_file(req.path);
    if (!input) co_return tl::unexpected(input.error());
    const UniqueFd& fd = input->fd;
    const std::uint64_t size = input->size;
    if (size == 0) {
      co_return make_error(ErrorCode::invalid_argument,
                           fmt::format("{} is empty: ArduinoOTA refuses a zero-size update", req.path));
    }
    if (size > 0x7FFFFFFFull) {  // the device parses the size with atoi()
      co_return make_error(ErrorCode::too_large,
                           fmt::format("{} is {} bytes: ArduinoOTA cannot announce more than 2 GiB", req.path, size));
    }
    const auto magic = check_image_magic(fd.get(), req.path);
    const bool not_an_image = req.payload == Payload::firmware && !magic;  // only `force` lets it through
    if (not_an_image && (!req.force || magic.error().code != ErrorCode::unsupported_kind)) {
      co_return tl::unexpected(magic.error());
    }
    auto md5 = md5_file(fd.get(), size);
    if (!md5) co_return tl::unexpected(md5.error().with_context(req.path));

    const auto started = Clock::now();
    const auto ex = co_await asio::this_coro::executor;
    const std::string device = format_endpoint(req.host, port);

    // 1. The device's address, and our listener for its connection.
    auto [rec, device_ep] = co_await resolve_udp(req.host, port, req.connect_timeout);
    if (rec == asio::error::operation_aborted) co_return make_error(ErrorCode::canceled, "canceled");
    if (rec) co_return make_error(ErrorCode::connect_failed, fmt::format("resolve {}: {}", req.host, rec.message()));

    tcp::acceptor acceptor(ex);
    {
      const bool v4 = device_ep.address().is_v4();
      tcp::endpoint listen_ep(v4 ? tcp::v4() : tcp::v6(), req.callback_port);
      error_code ec;
      if (!req.callback_host.empty()) {
        const auto addr = asio::ip::make_address(req.callback_host, ec);
        if (!ec) listen_ep = tcp::endpoint(addr, req.callback_port);
        // A name, or an address of a NAT in front of us: listen on every address, announce nothing (the device
        // connects back to the address the invitation came from, as with espota).
      }
      acceptor.open(listen_ep.protocol(), ec);
      if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) acceptor.bind(listen_ep, ec);
      if (ec == boost::system::errc::address_not_available) {
        listen_ep = tcp::endpoint(listen_ep.protocol(), req.callback_port);
        ec.clear();
        acceptor.bind(listen_ep, ec);
      }
      if (!ec) acceptor.listen(1, ec);
      if (ec) {
        co_return make_error(ErrorCode::io,
                             fmt::format("cannot listen on {}:{} for the device's connection: {}",
                                         listen_ep.address().to_string(), req.callback_port, ec.message()));
      }
    }
    const std::uint16_t local_port = acceptor.local_endpoint().port();

    // 2. Invitation (and authentication).
    udp::socket usock(ex);
    {
      error_code ec;
      usock.open(device_ep.protocol(), ec);
      if (!ec) usock.connect(device_ep, ec);  // replies from the device only; ICMP errors surface as refused
      if (ec) co_return make_error(ErrorCode::connect_failed, fmt::format("UDP to {}: {}", device, ec.message()));
    }
    const unsigned cmd = req.payload == Payload::filesystem ? aota::kUpdateSpiffs : aota::kUpdateFlash;
    Handshake hs{req,
                 device,
                 usock,
                 fmt::format("{} {} {} {}\n", cmd, local_port, size, *md5),
                 Clock::now() + req.connect_timeout,
                 std::clamp<Clock::duration>(req.connect_timeout / 4, kMinInviteInterval, kMaxInviteInterval)};
    if (auto r = co_await hs.run(); !r) co_return tl::unexpected(r.error());
    usock.close();

    // 3. The device connects back.
    tcp::socket sock(ex);
    {
      asio::steady_timer timer(ex);
      timer.expires_after(req.connect_timeout);
      auto r = co_await (acceptor.async_accept(sock, kUse) || timer.async_wait(kUse));
      if (r.index() == 1) {
        auto [tec] = std::get<1>(r);
        if (tec) co_return make_error(ErrorCode::canceled, "canceled");
        co_return make_error(
            ErrorCode::connect_failed,
            fmt::format(
                "{} accepted the invitation but did not connect back to TCP port {} of this host within {}. "
                "Likely causes: a firewall on this host blocks incoming TCP port {}, the device is on another "
                "subnet or behind NAT and cannot reach this host, a wrong --callback address or port, or the "
                "device could not start the update (image larger than its partition)",
                device, local_port, seconds_text(req.connect_timeout), local_port));
      }
      auto [aec] = std::get<0>(r);
      if (aec == asio::error::operation_aborted) co_return make_error(ErrorCode::canceled, "canceled");
      if (aec)
        co_return make_error(ErrorCode::io, fmt::format("accepting the device's connection: {}", aec.message()));
    }
    acceptor.close();
    {
      error_code ec;
      const auto peer = sock.remote_endpoint(ec);
      if (!ec) spdlog::debug("arduino-ota: device connected from {}:{}", peer.address().to_string(), peer.port());
    }

    // 4. + 5. The image, then the device's verdict.
    if (progress) progress(0, size);
    Transfer t(sock, fd.get(), size, req.idle_timeout, progress);
    co_await t.run();
    spdlog::debug("arduino-ota: sent {} B, {} acks for {} B, final text '{}' after {:.3f} s", t.sent(), t.acks(),
                  t.acked(), shown(t.text()), std::chrono::duration<double>(Clock::now() - started).count());

    if (t.canceled()) co_return make_error(ErrorCode::canceled, "push canceled");
    if (t.local_error()) co_return tl::unexpected(*t.local_error());
    const std::string text = t.text();
    if (text == "OK") {
      if (progress && t.acked() != size) progress(size, size);
      Outcome out;
      out.size = size;
      out.bytes_sent = t.sent();
      out.confirmed = true;
      out.device_message = text;
      co_return out;
    }
    if (!text.empty()) {
      std::string message =
          fmt::format("the device refused the image: '{}' (after {} of {} bytes)", shown(text), t.acked(), size);
      if (is_not_an_image_text(text)) {
        message +=
            ": the image is not an ESP32 application image (its first byte is not 0xE9), or it is encrypted "
            "and the sketch set no key with Update.setupCrypt(); the device keeps its firmware";
      }
      co_return make_error(code_for_device_text(text), std::move(message));
    }
    if (not_an_image && !t.timed_out() && t.acked() <= kFlashSector) {
      // The device's Update refused the image at its first flash sector and closed with our data unread: a reset,
      // which takes its words ("Decryption error") along when they had not left yet.
      co_return make_error(
          ErrorCode::unsupported_kind,
          fmt::format(
              "the device dropped the connection after acknowledging {} of {} bytes, at its first 4 KiB flash "
              "sector: its Update refuses a firmware image that does not start with 0xE9 (this one was sent "
              "with --force), and the device keeps its firmware",
              t.acked(), size));
    }
    if (t.timed_out()) {
      co_return make_error(ErrorCode::timeout,
                           fmt::format("the device was silent for {} after acknowledging {} of {} bytes",
                                       seconds_text(req.idle_timeout), t.acked(), size));
    }
    if (t.transport_error()) {
      co_return make_error(ErrorCode::connection_closed,
                           fmt::format("connection to the device lost after {} of {} bytes acknowledged ({})",
                                       t.acked(), size, t.transport_error().message()));
    }
    co_return make_error(ErrorCode::connection_closed,
                         fmt::format("the device closed the connection after {} of {} bytes acknowledged without a "
                                     "result (no OK): the update did not complete",
                                     t.acked(), size));
  } catch (const std::exception& e) {
    co_return tl::unexpected(net::exception_error(e));
  }
}

}  // namespace

boost::asio::awaitable<Result<Outcome>> push_arduino_ota(Request request, Progress progress) {
  return net::on_own_strand(push_on_strand(std::move(request), std::move(progress)));
}

}  // namespace otter::adapters
