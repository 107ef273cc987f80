// otter — the `legacy` adapter: the original design's receiver (a MicroPython loop on port 12345). Its whole
// protocol: the pusher connects and sends "NAME\nCONTENT"; the device reads ONE recv(1024), decodes it as UTF-8,
// splits at the first newline, writes CONTENT to a file named after NAME's last path segment, closes the connection,
// and answers nothing. So the adapter refuses what the receiver cannot take whole (more than 1024 bytes: the rest
// would be lost silently, the original design's main flaw) unless forced, and anything that is not UTF-8 text (the
// receiver's decode raises and the receiver program dies). Success means the receiver closed the connection after
// reading — the only sign it gives; the file itself is never confirmed.
#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "../net.hpp"
#include "otter/common/adapters_asio.hpp"
#include "otter/common/utf8.hpp"

namespace otter::adapters {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
/// The receiver's single conn.recv(1024).
constexpr std::size_t kReceiverRead = 1024;

/// Reads (and counts) until the peer closes or fails; returns how it ended.
asio::awaitable<boost::system::error_code> read_until_closed(tcp::socket& sock, std::size_t& extra) {
  std::array<char, 64> sink{};
  for (;;) {
    auto [ec, n] = co_await sock.async_read_some(asio::buffer(sink), kUse);
    if (ec) co_return ec;
    extra += n;
  }
}

asio::awaitable<void> expire(asio::steady_timer& timer, bool& expired) {
  auto [ec] = co_await timer.async_wait(kUse);
  if (!ec) expired = true;
}

/// Waits (at most the idle timeout) for the receiver to close the connection; the bytes it sent meanwhile (none
/// expected).
asio::awaitable<Result<std::size_t>> wait_for_close(tcp::socket& sock, const Request& r) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(r.idle_timeout);
  bool expired = false;
  std::size_t extra = 0;
  auto race = co_await (read_until_closed(sock, extra) || expire(timer, expired));
  if (expired) {
    co_return make_error(ErrorCode::timeout,
                         fmt::format("{} did not close the connection within {}: the receiver may not have written "
                                     "the file (is it the original receiver?)",
                                     format_endpoint(r.host, r.port), net::seconds_text(r.idle_timeout)));
  }
  if (race.index() != 0) co_return make_error(ErrorCode::canceled, "canceled while waiting for the receiver");
  const auto ec = std::get<0>(race);
  if (ec == asio::error::eof || ec == asio::error::connection_reset) co_return extra;
  if (ec == asio::error::operation_aborted) co_return make_error(ErrorCode::canceled, "canceled");
  co_return make_error(ErrorCode::io, fmt::format("{}: {}", format_endpoint(r.host, r.port), ec.message()));
}

/// Checks what the receiver can take and builds the one message it reads: "NAME\nCONTENT".
Result<std::string> legacy_message(const Request& r) {
  if (r.payload != Payload::file) {
    return make_error(ErrorCode::unsupported_kind,
                      "the original receiver writes text files only: no firmware or filesystem images");
  }
  if (r.name.empty() || r.name.find('\n') != std::string::npos || r.name.find('\r') != std::string::npos) {
    return make_error(ErrorCode::bad_name,
                      "the name must be one non-empty line (the receiver splits at the first "
                      "newline)");
  }
  const auto slash = r.name.rfind('/');
  const std::string base = slash == std::string::npos ? r.name : r.name.substr(slash + 1);
  if (base.empty() || base == "." || base == "..") {
    return make_error(ErrorCode::bad_name,
                      fmt::format("'{}': the receiver writes a file named after the last path segment, and '{}' "
                                  "is not a file name",
                                  r.name, base));
  }

  std::string content;
  {
    std::ifstream in(r.path, std::ios::binary);
    if (!in) return make_error(ErrorCode::not_found, fmt::format("cannot read {}", r.path));
    content.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad()) return make_error(ErrorCode::io, fmt::format("cannot read {}", r.path));
  }
  std::string message = r.name + "\n" + content;
  if (const auto bad = invalid_utf8_at(message); bad != std::string_view::npos) {
    return make_error(ErrorCode::invalid_argument,
                      fmt::format("{} is not UTF-8 text (byte {}): the original receiver decodes what it receives "
                                  "as UTF-8 and its program stops on anything else; it cannot take binaries",
                                  r.path, bad >= r.name.size() + 1 ? bad - r.name.size() - 1 : bad));
  }
  if (message.size() > kReceiverRead && !r.force) {
    return make_error(ErrorCode::too_large,
                      fmt::format("name + newline + content is {} bytes, over the 1024 the original receiver reads "
                                  "(one recv(1024)): it would write the first {} bytes and drop the rest without "
                                  "a word. Install otter's MicroPython receiver (any size, verified), or --force "
                                  "to send anyway",
                                  message.size(), kReceiverRead - r.name.size() - 1));
  }
  return message;
}

}  // namespace

asio::awaitable<Result<Outcome>> push_legacy(Request r, Progress progress) {
  auto built = legacy_message(r);
  if (!built) co_return tl::unexpected(built.error());
  const std::string& message = *built;
  const std::uint64_t size = message.size() - r.name.size() - 1;
  const auto ex = co_await asio::this_coro::executor;
  tcp::socket sock(ex);
  if (auto c = co_await net::connect_to(sock, r.host, r.port, r.connect_timeout); !c)
    co_return tl::unexpected(c.error());

  // One write, so that the bytes arrive together for the receiver's single recv.
  auto [wec, written] = co_await asio::async_write(sock, asio::buffer(message), kUse);
  if (wec == asio::error::operation_aborted) co_return make_error(ErrorCode::canceled, "canceled while sending");
  if (wec) {
    co_return make_error(ErrorCode::connection_closed,
                         fmt::format("sending to {}: {}", format_endpoint(r.host, r.port), wec.message()));
  }
  if (progress) progress(size, size);
  boost::system::error_code ignored;
  sock.shutdown(tcp::socket::shutdown_send, ignored);

  // The receiver closes the connection once it has written the file: wait for that (it says nothing else).
  auto extra = co_await wait_for_close(sock, r);
  if (!extra) co_return tl::unexpected(extra.error());

  Outcome out;
  out.size = size;
  out.bytes_sent = size;
  out.confirmed = false;  // the receiver answers nothing
  if (*extra != 0) out.device_message = fmt::format("{} unexpected bytes from the device", *extra);
  co_return out;
}

}  // namespace otter::adapters
