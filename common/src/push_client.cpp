// otter — the transfer engine: drives core::Pusher over a Boost.Asio TCP socket with C++20 coroutines.
//
// A session runs three coroutines on one strand, raced with `||` (the first to finish cancels the others; each
// finishes only once the session is over):
//   reader  — reads device bytes and feeds the pusher (HELLO, READY, ACK, DONE, STAT_RESULT, ERROR); wakes the
//   writer; writer  — sends the pusher's control output, then DATA: one pread of up to kBatchBytes from the file, cut
//   into
//             frames of chunk_size, each sent as 3-byte header + content straight from that buffer in one gathered
//             async_write (content is never copied through the state machine); when the window is full it sleeps
//             on `wake` until the reader or the ticker cancels it;
//   ticker  — calls Pusher::tick() so that a silent device ends the session with TIMEOUT.
//
// Without a known SHA-256 (PushOptions::sha256 unset) the session asks for DIGEST_LAST: the writer hashes each
// batch as it sends it, so the file is read once, and hands the digest to the pusher after the last byte. A device
// without the capability gets the SHA-256 in the request, hashed by the writer on the same connection.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "otter/common/file_hash.hpp"
#include "otter/common/hex.hpp"
#include "otter/common/keyfile.hpp"
#include "otter/common/push_client_asio.hpp"
#include "otter/common/unique_fd.hpp"
#include "otter/core/pusher.hpp"

#include "net.hpp"
#include "otter/ports/openssl_crypto.hpp"

namespace otter {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

/// DATA payload bytes gathered into one async_write (one pread, one sendmsg).
constexpr std::size_t kBatchBytes = std::size_t{256} * 1024;
/// asio hands at most 64 buffers to one sendmsg: header + content per frame.
constexpr std::size_t kMaxFramesPerBatch = 32;
/// Send buffer: several batches in flight in the kernel.
constexpr int kSendBuffer = 4 * 1024 * 1024;
/// How long the engine tries to hand a final ERROR frame to a device after a local failure.
constexpr std::chrono::milliseconds kFlushTimeout{1000};

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

/// net::connect_to, plus a send buffer deep enough for several batches in flight.
asio::awaitable<Result<void>> connect_to(tcp::socket& sock, const std::string& host, std::uint16_t port,
                                         std::chrono::milliseconds timeout) {
  auto r = co_await net::connect_to(sock, host, port, timeout);
  if (!r) co_return r;
  error_code ignored;
  sock.set_option(asio::socket_base::send_buffer_size(kSendBuffer), ignored);
  co_return r;
}

/// Half-closes the connection and waits (bounded) until the device closes its end. A device releases the name it
/// was receiving before it closes, so a new connection made after this finds the name free (not BUSY).
asio::awaitable<void> close_and_await_peer(tcp::socket& sock, std::chrono::milliseconds timeout) {
  error_code ec;
  sock.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  asio::steady_timer timer(sock.get_executor());
  timer.expires_after(timeout);
  auto drain = [&]() -> asio::awaitable<void> {
    std::array<std::uint8_t, 512> buf;
    for (;;) {
      auto [e, n] = co_await sock.async_read_some(asio::buffer(buf), kUse);
      if (e) co_return;  // EOF (closed), reset
    }
  };
  co_await (drain() || timer.async_wait(kUse));
}

DeviceInfo device_info(const core::Hello& h) {
  DeviceInfo d;
  d.id.assign(reinterpret_cast<const char*>(h.id.data), h.id.size);
  d.caps = h.caps;
  d.fw_state = h.fw_state;
  d.window = h.window;
  d.max_size = h.max_size;
  d.free = h.free;
  return d;
}

// ---------------------------------------------------------------------------------------------------------------
// One protocol session on a connected socket

class Session {
 public:
  Session(tcp::socket& sock, const core::PushParams& params, int fd, const PushProgress* progress)
      : sock_(sock),
        pusher_(params, crypto_),
        wake_(sock.get_executor()),
        fd_(fd),
        chunk_(params.chunk_size),
        size_(params.size),
        tick_interval_(std::clamp<std::uint32_t>(params.idle_timeout_ms / 10, 10, 250)),
        progress_(progress) {
    const std::size_t frames = std::clamp<std::size_t>(kBatchBytes / chunk_, 1, kMaxFramesPerBatch);
    batch_cap_ = frames * chunk_;
    if (fd_ >= 0) batch_ = std::make_unique_for_overwrite<std::uint8_t[]>(batch_cap_);
    headers_.resize(frames);
    lengths_.reserve(frames);
    buffers_.reserve(2 * frames);
  }

  /// Runs the protocol until the session is over.
  asio::awaitable<void> run() {
    co_await (reader() || writer() || ticker());
    co_await flush_final_output();
  }

  [[nodiscard]] const core::Pusher& pusher() const { return pusher_; }
  [[nodiscard]] bool have_device() const { return have_device_; }
  [[nodiscard]] const DeviceInfo& device() const { return device_; }
  [[nodiscard]] std::uint64_t bytes_sent() const { return bytes_sent_; }

  /// The session's error (nullopt on success).
  [[nodiscard]] std::optional<Error> error() const {
    if (local_error_) return local_error_;
    if (pusher_.state() == core::Pusher::State::succeeded && pusher_.error() == ErrorCode::ok) return std::nullopt;
    if (!pusher_.finished()) return Error(ErrorCode::internal, "session ended in an unfinished state");
    const ErrorCode code = pusher_.error();
    std::string msg = pusher_.error_message();
    if (msg.empty()) msg = error_description(code);
    if (code == ErrorCode::connection_closed && transport_error_ && transport_error_ != asio::error::eof) {
      msg += fmt::format(" ({})", transport_error_.message());
    }
    return Error(code, std::move(msg));
  }

 private:
  [[nodiscard]] bool over() const { return pusher_.finished() || local_error_.has_value(); }

  void fail_locally(Error e) {
    if (!over()) local_error_ = std::move(e);
    wake_.cancel();
  }

  void transport_failed(const error_code& ec) {
    if (over()) return;
    if (ec == asio::error::operation_aborted) {
      fail_locally(Error(ErrorCode::canceled, "transfer canceled"));
      return;
    }
    spdlog::debug("transport: {}", ec.message());
    transport_error_ = ec;
    pusher_.peer_closed();
    wake_.cancel();
  }

  void after_input() {
    using S = core::Pusher::State;
    const S st = pusher_.state();
    if (!have_device_ && st != S::await_hello && st != S::failed) {
      device_ = device_info(pusher_.hello());
      have_device_ = true;
      spdlog::debug("device {}: caps {:#06x}, window {}, max_size {}, free {}", device_.id, device_.caps,
                    device_.window, device_.max_size, device_.free);
    }
    if (progress_ != nullptr && *progress_ &&
        (st == S::sending || st == S::need_digest || st == S::await_done || st == S::succeeded) &&
        (!reported_ || pusher_.acked() != last_acked_)) {
      reported_ = true;
      last_acked_ = pusher_.acked();
      (*progress_)(last_acked_, size_);
    }
  }

  asio::awaitable<void> reader() {
    std::array<std::uint8_t, 4096> buf;  // the device sends only small control frames
    while (!over()) {
      auto [ec, n] = co_await sock_.async_read_some(asio::buffer(buf), kUse);
      if (ec) {
        transport_failed(ec);
        co_return;
      }
      pusher_.feed(buf.data(), n, now_ms());
      after_input();
      wake_.cancel();
    }
  }

  asio::awaitable<void> writer() {
    while (!over()) {
      const core::ByteView out = pusher_.output();
      if (out.size != 0) {
        auto [ec, n] = co_await asio::async_write(sock_, asio::buffer(out.data, out.size), kUse);
        if (ec) {
          transport_failed(ec);
          co_return;
        }
        pusher_.output_consumed(n);
        continue;
      }
      if (pusher_.needs_sha256() || pusher_.needs_prefix_check() || pusher_.needs_digest()) {
        if (auto r = hash_step(); !r) {
          fail_locally(r.error());
          co_return;
        }
        continue;
      }
      if (!gather()) {
        // Window full or nothing to send: sleep until the reader (ACK, DONE, ERROR) or the ticker wakes us.
        wake_.expires_at(asio::steady_timer::time_point::max());
        co_await wake_.async_wait(kUse);
        continue;
      }
      if (auto r = pread_exact(fd_, batch_.get(), batch_fill_, batch_offset_); !r) {
        fail_locally(r.error());
        co_return;
      }
      // DIGEST_LAST: hashed here, while the batch is in the cache for the send that follows.
      if (pusher_.digest_last_used()) content_hash_.update(batch_.get(), batch_fill_);
      buffers_.clear();
      std::size_t pos = 0;
      for (std::size_t i = 0; i < lengths_.size(); ++i) {
        buffers_.emplace_back(headers_[i].data(), headers_[i].size());
        buffers_.emplace_back(batch_.get() + pos, lengths_[i]);
        pos += lengths_[i];
      }
      auto [ec, n] = co_await asio::async_write(sock_, buffers_, kUse);
      count_sent(n);
      if (ec) {
        transport_failed(ec);
        co_return;
      }
    }
  }

  /// The pusher waits for a SHA-256 only the file can give (DIGEST_LAST): the whole file's before the request, the
  /// held prefix's before resuming, or the content's after the last DATA byte (hashed while sending).
  Result<void> hash_step() {
    std::uint8_t digest[core::kHashSize];
    if (pusher_.needs_sha256()) {
      auto h = sha256_fd(fd_, size_);
      if (!h) return tl::unexpected(h.error());
      pusher_.set_sha256(h->data());
      return {};
    }
    if (pusher_.needs_prefix_check()) {
      content_hash_.reset();
      for (std::uint64_t at = 0; at < pusher_.resume_offset();) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(batch_cap_, pusher_.resume_offset() - at));
        if (auto r = pread_exact(fd_, batch_.get(), n, at); !r) return r;
        content_hash_.update(batch_.get(), n);
        at += n;
      }
      content_hash_.peek(digest);
      pusher_.prefix_checked(digest);
      return {};
    }
    content_hash_.finish(digest);
    pusher_.set_digest(digest);
    return {};
  }

  /// Takes as many DATA frames as the pusher allows (up to one batch). False if none.
  bool gather() {
    lengths_.clear();
    batch_fill_ = 0;
    batch_offset_ = pusher_.data_offset();
    while (lengths_.size() < headers_.size()) {
      const std::uint32_t len = std::min(pusher_.data_ready(), chunk_);
      if (len == 0 || batch_fill_ + len > batch_cap_) break;
      core::encode_header(core::FrameType::data, static_cast<std::uint16_t>(len), headers_[lengths_.size()].data());
      pusher_.data_sent(len);
      lengths_.push_back(len);
      batch_fill_ += len;
    }
    return !lengths_.empty();
  }

  /// Counts the DATA payload bytes within the first `n` bytes of the batch written.
  void count_sent(std::size_t n) {
    for (const std::uint32_t len : lengths_) {
      if (n <= core::kFrameHeaderSize) return;
      n -= core::kFrameHeaderSize;
      const std::size_t payload = std::min<std::size_t>(n, len);
      bytes_sent_ += payload;
      n -= payload;
    }
  }

  asio::awaitable<void> ticker() {
    asio::steady_timer timer(sock_.get_executor());
    while (!over()) {
      timer.expires_after(std::chrono::milliseconds(tick_interval_));
      auto [ec] = co_await timer.async_wait(kUse);
      if (ec) {
        transport_failed(ec);  // only an outside cancellation gets here while the session runs
        co_return;
      }
      pusher_.tick(now_ms());
      if (pusher_.finished()) wake_.cancel();
    }
  }

  /// A pusher that failed may have queued an ERROR for the device: best effort, bounded.
  asio::awaitable<void> flush_final_output() {
    const core::ByteView out = pusher_.output();
    if (out.size == 0 || transport_error_ || !sock_.is_open()) co_return;
    asio::steady_timer timer(sock_.get_executor());
    timer.expires_after(kFlushTimeout);
    co_await (asio::async_write(sock_, asio::buffer(out.data, out.size), kUse) || timer.async_wait(kUse));
  }

  tcp::socket& sock_;
  ports::OpenSslCrypto crypto_;
  ports::OpenSslSha256 content_hash_;  // DIGEST_LAST: the content as it is sent
  core::Pusher pusher_;
  asio::steady_timer wake_;
  int fd_;
  std::uint32_t chunk_;
  std::uint64_t size_;
  std::uint32_t tick_interval_;
  const PushProgress* progress_;

  std::unique_ptr<std::uint8_t[]> batch_;
  std::size_t batch_cap_ = 0;
  std::size_t batch_fill_ = 0;
  std::uint64_t batch_offset_ = 0;
  std::vector<std::array<std::uint8_t, core::kFrameHeaderSize>> headers_;
  std::vector<std::uint32_t> lengths_;
  std::vector<asio::const_buffer> buffers_;

  std::optional<Error> local_error_;
  error_code transport_error_;
  bool have_device_ = false;
  DeviceInfo device_;
  bool reported_ = false;
  std::uint64_t last_acked_ = 0;
  std::uint64_t bytes_sent_ = 0;
};

Result<void> check_common(const std::string& host, const std::string& key, const std::string& name) {
  if (host.empty()) return make_error(ErrorCode::invalid_argument, "no device host given");
  if (key.size() < kMinKeySize) {
    return make_error(ErrorCode::config,
                      fmt::format("key is {} bytes long; at least {} bytes are required", key.size(), kMinKeySize));
  }
  // The device judges names (protocol.md section 5); only what cannot be encoded in a PUSH is refused here.
  if (name.size() > core::kMaxControlPayload - core::kPushFixed) {
    return make_error(ErrorCode::bad_name, fmt::format("name is {} bytes long; at most {} bytes are allowed",
                                                       name.size(), core::kMaxNameLen));
  }
  return {};
}

Error exception_error(const std::exception& e) {
  if (const auto* se = dynamic_cast<const boost::system::system_error*>(&e);
      se != nullptr && se->code() == asio::error::operation_aborted) {
    return Error(ErrorCode::canceled, "transfer canceled");
  }
  return Error(ErrorCode::internal, fmt::format("unexpected exception: {}", e.what()));
}

// ---------------------------------------------------------------------------------------------------------------
// Operations (run on a strand)

asio::awaitable<Result<StatOutcome>> stat_on_strand(StatOptions o) {
  try {
    if (auto r = check_common(o.host, o.key, o.name); !r) co_return tl::unexpected(r.error());
    tcp::socket sock(co_await asio::this_coro::executor);
    if (auto r = co_await connect_to(sock, o.host, o.port, o.connect_timeout); !r)
      co_return tl::unexpected(r.error());

    core::PushParams params;
    params.key = core::ByteView(o.key.data(), o.key.size());
    params.op = core::Operation::stat;
    params.name = core::ByteView(o.name.data(), o.name.size());
    params.idle_timeout_ms = static_cast<std::uint32_t>(o.idle_timeout.count());
    Session session(sock, params, -1, nullptr);
    co_await session.run();
    if (auto e = session.error()) co_return tl::unexpected(*e);

    StatOutcome out;
    out.device = session.device();
    const core::StatResult& sr = session.pusher().stat_result();
    out.exists = sr.exists != 0;
    out.size = sr.size;
    std::copy(std::begin(sr.sha256), std::end(sr.sha256), out.sha256.begin());
    co_return out;
  } catch (const std::exception& e) {
    co_return tl::unexpected(exception_error(e));
  }
}

asio::awaitable<Result<PushOutcome>> push_on_strand(PushOptions o, PushProgress progress) {
  try {
    if (auto r = check_common(o.host, o.key, o.name); !r) co_return tl::unexpected(r.error());
    if (o.chunk_size == 0 || o.chunk_size > core::kMaxDataPayload) {
      co_return make_error(ErrorCode::invalid_argument,
                           fmt::format("chunk size {} is out of range 1..{}", o.chunk_size, core::kMaxDataPayload));
    }
    if (o.idle_timeout.count() <= 0 || o.connect_timeout.count() <= 0) {
      co_return make_error(ErrorCode::invalid_argument, "timeouts must be positive");
    }

    auto input = open_input_file(o.path);
    if (!input) co_return tl::unexpected(input.error());
    const UniqueFd fd = std::move(input->fd);
    const std::uint64_t file_size = input->size;
    std::optional<tcp::socket> socket;  // outlives the session that refers to it
    if (o.size && *o.size != file_size) {
      co_return make_error(ErrorCode::invalid_argument,
                           fmt::format("{} is {} bytes, expected {}", o.path, file_size, *o.size));
    }
    if (!o.sha256 && o.skip_unchanged) {
      // Comparing with the device's copy needs the SHA-256 first (otherwise it goes after the data).
      auto h = sha256_fd(fd.get(), file_size);
      if (!h) co_return tl::unexpected(h.error().with_context(o.path));
      o.sha256 = *h;
    }

    if (o.skip_unchanged) {
      StatOptions so{o.host, o.port, o.key, o.name, o.connect_timeout, o.idle_timeout};
      auto s = co_await stat_on_strand(std::move(so));
      if (!s) co_return tl::unexpected(s.error().with_context("checking the device's copy"));
      if (s->exists && s->size == file_size && s->sha256 == *o.sha256) {
        PushOutcome out;
        out.unchanged = true;
        out.device = s->device;
        out.resume_offset = file_size;
        out.bytes_acked = file_size;
        out.total = file_size;
        out.sha256 = s->sha256;
        co_return out;
      }
    }

    core::PushParams params;
    params.key = core::ByteView(o.key.data(), o.key.size());
    params.op = core::Operation::push;
    params.name = core::ByteView(o.name.data(), o.name.size());
    params.kind = o.kind;
    params.flags = o.flags;
    params.size = file_size;
    if (o.sha256) {
      std::copy(o.sha256->begin(), o.sha256->end(), params.sha256);
    } else {
      params.digest_last = true;
    }
    params.chunk_size = o.chunk_size;
    params.idle_timeout_ms = static_cast<std::uint32_t>(o.idle_timeout.count());

    // A DIGEST_LAST push may find that the device's partial copy is of other content (same name and size): the
    // second attempt asks the device to start from 0 (RESTART).
    std::optional<Session> session;
    bool restarted = false;
    for (int attempt = 0;; ++attempt) {
      session.reset();
      tcp::socket& sock = socket.emplace(co_await asio::this_coro::executor);
      if (auto r = co_await connect_to(sock, o.host, o.port, o.connect_timeout); !r)
        co_return tl::unexpected(r.error());
      session.emplace(sock, params, fd.get(), &progress);
      co_await session->run();
      const std::optional<Error> e = session->error();
      if (!e) break;
      if (e->code != ErrorCode::resume_mismatch || attempt > 0) co_return tl::unexpected(*e);
      spdlog::debug("push: {}; pushing again from offset 0", e->message);
      co_await close_and_await_peer(sock, o.idle_timeout);
      params.flags = static_cast<std::uint8_t>(params.flags | core::flags::restart);
      restarted = true;
    }

    const core::Pusher& p = session->pusher();
    PushOutcome out;
    out.device = session->device();
    out.resume_offset = p.resume_offset();
    out.bytes_sent = session->bytes_sent();
    out.digest_last = p.digest_last_used();
    out.restarted = restarted;
    out.bytes_acked = p.acked();
    out.total = p.done().size;
    std::copy(std::begin(p.done().sha256), std::end(p.done().sha256), out.sha256.begin());
    out.rebooting = p.done().rebooting != 0;
    spdlog::debug("push done: resumed from {}, sent {} B, acked {}, sha256 {}", out.resume_offset, out.bytes_sent,
                  out.bytes_acked, to_hex(out.sha256));
    co_return out;
  } catch (const std::exception& e) {
    co_return tl::unexpected(exception_error(e));
  }
}

/// Runs an awaitable operation to completion on a private io_context.
template <class T>
Result<T> run_blocking(asio::awaitable<Result<T>> op) {
  asio::io_context io(1);
  std::optional<Result<T>> result;
  asio::co_spawn(io, std::move(op), [&](const std::exception_ptr& e, Result<T> r) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        result = tl::unexpected(exception_error(ex));
      }
    } else {
      result = std::move(r);
    }
  });
  io.run();
  if (!result) return make_error(ErrorCode::internal, "transfer did not complete");
  return std::move(*result);
}

}  // namespace

const char* fw_state_name(core::FwState state) noexcept {
  switch (state) {
    case core::FwState::valid:
      return "valid";
    case core::FwState::pending_verify:
      return "pending_verify";
    case core::FwState::unknown:
      break;
  }
  return "unknown";
}

std::string format_endpoint(const std::string& host, std::uint16_t port) {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

asio::awaitable<Result<PushOutcome>> async_push(PushOptions options, PushProgress progress) {
  const auto strand = asio::make_strand(co_await asio::this_coro::executor);
  co_return co_await asio::co_spawn(strand, push_on_strand(std::move(options), std::move(progress)),
                                    asio::use_awaitable);
}

asio::awaitable<Result<StatOutcome>> async_stat(StatOptions options) {
  const auto strand = asio::make_strand(co_await asio::this_coro::executor);
  co_return co_await asio::co_spawn(strand, stat_on_strand(std::move(options)), asio::use_awaitable);
}

Result<PushOutcome> push(const PushOptions& options, const PushProgress& progress) {
  return run_blocking(async_push(options, progress));
}

Result<StatOutcome> stat(const StatOptions& options) { return run_blocking(async_stat(options)); }

}  // namespace otter
