#include "otter/linkem/linkem.hpp"

#include <linux/sockios.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <deque>
#include <random>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace otter::linkem {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::microseconds;
using std::chrono::nanoseconds;

namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

/// Splits "12.5mbit" into 12.5 and "mbit". False if there is no leading number.
bool split_number(std::string_view text, double& value, std::string_view& suffix) {
  std::size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  if (i == 0) return false;
  const auto r = std::from_chars(text.data(), text.data() + i, value);
  if (r.ec != std::errc() || r.ptr != text.data() + i || !std::isfinite(value) || value < 0) return false;
  suffix = text.substr(i);
  return true;
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// Independent streams per (seed, connection, purpose).
std::mt19937_64 stream(std::uint64_t seed, std::uint64_t index, std::uint64_t purpose) {
  return std::mt19937_64(splitmix64(splitmix64(seed) ^ splitmix64(index * 4 + purpose)));
}

bool gets_faults(const Options& o, std::uint64_t index) {
  return o.fault_connections == 0 || index <= o.fault_connections;
}

nanoseconds transmit_time(std::size_t bytes, double rate) {
  if (rate <= 0) return nanoseconds(0);
  return nanoseconds(static_cast<std::int64_t>(std::llround(static_cast<double>(bytes) * 1e9 / rate)));
}

/// Read size: about 2 ms of link time (smooth serialisation, few syscalls), 1..16 KiB; 64 KiB when unlimited.
std::size_t chunk_size(double rate) {
  if (rate <= 0) return std::size_t{64} * 1024;
  return static_cast<std::size_t>(std::clamp(rate * 0.002, 1024.0, 16384.0));
}

}  // namespace

Result<double> parse_rate(std::string_view text) {
  double v = 0;
  std::string_view suffix;
  if (!split_number(text, v, suffix))
    return make_error(ErrorCode::invalid_argument, fmt::format("bad rate '{}' (e.g. 8mbit, 500kbit, 2MB)", text));
  const std::string s = lower(suffix);
  double bytes_per_s = 0;
  if (suffix.empty() || s == "bit" || s == "bps") {
    bytes_per_s = v / 8;
  } else if (s == "kbit") {
    bytes_per_s = v * 1e3 / 8;
  } else if (s == "mbit") {
    bytes_per_s = v * 1e6 / 8;
  } else if (s == "gbit") {
    bytes_per_s = v * 1e9 / 8;
  } else if (suffix == "B") {
    bytes_per_s = v;
  } else if (suffix == "kB" || suffix == "KB") {
    bytes_per_s = v * 1e3;
  } else if (suffix == "MB") {
    bytes_per_s = v * 1e6;
  } else if (suffix == "GB") {
    bytes_per_s = v * 1e9;
  } else {
    return make_error(ErrorCode::invalid_argument,
                      fmt::format("bad rate '{}': unit must be bit, kbit, mbit, gbit, B, kB, MB or GB", text));
  }
  if (v > 0 && bytes_per_s < 1)
    return make_error(ErrorCode::invalid_argument, fmt::format("rate '{}' is below 1 byte per second", text));
  return bytes_per_s;
}

Result<microseconds> parse_duration(std::string_view text) {
  double v = 0;
  std::string_view suffix;
  if (!split_number(text, v, suffix))
    return make_error(ErrorCode::invalid_argument, fmt::format("bad duration '{}' (e.g. 20ms, 500us, 5s)", text));
  double us = 0;
  if (suffix == "us") {
    us = v;
  } else if (suffix == "ms" || suffix.empty()) {
    us = v * 1e3;
  } else if (suffix == "s") {
    us = v * 1e6;
  } else {
    return make_error(ErrorCode::invalid_argument, fmt::format("bad duration '{}': unit must be us, ms or s", text));
  }
  if (us > 3600e6) return make_error(ErrorCode::invalid_argument, fmt::format("duration '{}' is over 1 h", text));
  return microseconds(static_cast<std::int64_t>(std::llround(us)));
}

Result<std::uint64_t> parse_bytes(std::string_view text) {
  double v = 0;
  std::string_view suffix;
  if (!split_number(text, v, suffix) || text.find('.') != std::string_view::npos)
    return make_error(ErrorCode::invalid_argument, fmt::format("bad byte count '{}' (e.g. 262144, 256K, 1M)", text));
  const std::string s = lower(suffix);
  double mult = 1;
  if (s.empty() || s == "b") {
    mult = 1;
  } else if (s == "k" || s == "kib" || s == "kb") {
    mult = 1024.0;
  } else if (s == "m" || s == "mib" || s == "mb") {
    mult = 1024.0 * 1024;
  } else if (s == "g" || s == "gib" || s == "gb") {
    mult = 1024.0 * 1024 * 1024;
  } else {
    return make_error(ErrorCode::invalid_argument, fmt::format("bad byte count '{}': unit must be K, M or G", text));
  }
  const double bytes = v * mult;
  if (bytes > 1e18) return make_error(ErrorCode::invalid_argument, fmt::format("byte count '{}' is too large", text));
  return static_cast<std::uint64_t>(bytes);
}

Result<std::pair<std::string, std::uint16_t>> parse_endpoint(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= text.size())
    return make_error(ErrorCode::invalid_argument, fmt::format("bad address '{}' (expected HOST:PORT)", text));
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  const std::string_view p = text.substr(colon + 1);
  const auto r = std::from_chars(p.data(), p.data() + p.size(), port);
  if (r.ec != std::errc() || r.ptr != p.data() + p.size() || port > 65535)
    return make_error(ErrorCode::invalid_argument, fmt::format("bad port in '{}' (0..65535)", text));
  boost::system::error_code ec;
  asio::ip::make_address(std::string(host), ec);
  if (ec)
    return make_error(ErrorCode::invalid_argument,
                      fmt::format("bad address '{}': '{}' is not an IP address", text, host));
  return std::pair<std::string, std::uint16_t>{std::string(host), static_cast<std::uint16_t>(port)};
}

Result<void> validate(const Options& o) {
  if (o.to_port == 0) return make_error(ErrorCode::invalid_argument, "--to needs a port other than 0");
  if (o.cut_after && o.cut_random)
    return make_error(ErrorCode::invalid_argument, "--cut-after and --cut-random exclude each other");
  if (o.cut_random && o.cut_within == 0)
    return make_error(ErrorCode::invalid_argument, "--cut-within must be at least 1");
  if (o.stall_after.has_value() != (o.stall_for.count() > 0))
    return make_error(ErrorCode::invalid_argument, "--stall-after and --stall-for go together");
  if (o.slow_after.has_value() != (o.slow_rate > 0))
    return make_error(ErrorCode::invalid_argument, "--slow-after and --slow-rate go together");
  if (o.jitter > o.delay)
    return make_error(ErrorCode::invalid_argument, "--jitter must not exceed --delay (delays are never negative)");
  if (o.queue < 1024) return make_error(ErrorCode::invalid_argument, "--queue must be at least 1024 bytes");
  return {};
}

std::optional<std::uint64_t> planned_cut(const Options& o, std::uint64_t index) {
  if (!gets_faults(o, index)) return std::nullopt;
  if (o.cut_after) return o.cut_after;
  if (o.cut_random) {
    auto rng = stream(o.seed, index, 0);
    return 1 + rng() % o.cut_within;
  }
  return std::nullopt;
}

namespace {

enum class Kind { data, eof, cut, reset };

struct Chunk {
  Kind kind = Kind::data;
  std::vector<char> bytes;
  Clock::time_point deliver_at;
};

/// A timer used as a wake-up signal: wait() until notify() or the deadline.
struct Signal {
  explicit Signal(const asio::any_io_executor& ex) : timer(ex) {}
  asio::awaitable<void> wait_until(Clock::time_point deadline) {
    timer.expires_at(deadline);
    waiting = true;
    co_await timer.async_wait(use_nothrow);
    waiting = false;
  }
  void notify() {
    if (waiting) timer.cancel();
  }
  asio::steady_timer timer;
  bool waiting = false;
};

struct Pipe {
  explicit Pipe(const asio::any_io_executor& ex) : writer_wake(ex), reader_wake(ex) {}
  std::deque<Chunk> queue;
  std::uint64_t queued = 0;     ///< data bytes read but not yet written
  std::uint64_t read = 0;       ///< data bytes read from the source
  std::uint64_t delivered = 0;  ///< data bytes written to the destination
  Clock::time_point link_free{};
  Clock::time_point last_delivery{};
  double rate = 0;
  std::mt19937_64 jitter_rng;
  Signal writer_wake;
  Signal reader_wake;
  bool done = false;  ///< the writer has finished (FIN delivered)
};

struct Conn;

}  // namespace

struct Linkem::Impl : std::enable_shared_from_this<Linkem::Impl> {
  Impl(asio::io_context& io_, Options o) : io(io_), options(std::move(o)), acceptor(io_) {
    const tcp::endpoint ep(asio::ip::make_address(options.listen_host), options.listen_port);
    acceptor.open(ep.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen();
  }

  void emit(const std::string& line) const {
    if (sink) sink(line);
  }

  asio::awaitable<void> accept_loop();

  asio::io_context& io;
  Options options;
  tcp::acceptor acceptor;
  std::function<void(const std::string&)> sink;
  std::uint64_t next_index = 1;
  bool stopped = false;
  std::vector<std::weak_ptr<Conn>> conns;
};

namespace {

struct Conn : std::enable_shared_from_this<Conn> {
  Conn(std::shared_ptr<Linkem::Impl> owner_, std::uint64_t index_, tcp::socket client_)
      : owner(std::move(owner_)),
        o(owner->options),
        index(index_),
        client(std::move(client_)),
        target(owner->io),
        up(owner->io.get_executor()),
        down(owner->io.get_executor()) {
    up.rate = down.rate = o.rate;
    up.jitter_rng = stream(o.seed, index, 1);
    down.jitter_rng = stream(o.seed, index, 2);
    faulty = gets_faults(o, index);
    cut_at = planned_cut(o, index);
  }

  Pipe& pipe(Direction d) { return d == Direction::up ? up : down; }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    std::string plan;
    if (cut_at) plan += fmt::format(" cut-at={}", *cut_at);
    if (faulty && o.stall_after) plan += fmt::format(" stall-at={}", *o.stall_after);
    if (faulty && o.slow_after) plan += fmt::format(" slow-at={}", *o.slow_after);
    owner->emit(fmt::format("linkem: conn {} open{}", index, plan));
    const tcp::endpoint to(asio::ip::make_address(o.to_host), o.to_port);
    auto [ec] = co_await target.async_connect(to, use_nothrow);
    if (ec) {
      error = "connect: " + ec.message();
      reset_both();
      finish();
      co_return;
    }
    boost::system::error_code ignored;
    client.set_option(tcp::no_delay(true), ignored);
    target.set_option(tcp::no_delay(true), ignored);
    const auto now = Clock::now();
    up.link_free = down.link_free = now;
    up.last_delivery = down.last_delivery = now;
    auto ex = owner->io.get_executor();
    asio::co_spawn(ex, reader(Direction::up), asio::detached);
    asio::co_spawn(ex, reader(Direction::down), asio::detached);
    asio::co_spawn(ex, writer(Direction::up), asio::detached);
    asio::co_spawn(ex, writer(Direction::down), asio::detached);
  }

  void enqueue(Direction d, Chunk c) {
    Pipe& p = pipe(d);
    const auto now = Clock::now();
    if (c.kind == Kind::data) {
      const auto departure = std::max(now, p.link_free) + transmit_time(c.bytes.size(), p.rate);
      p.link_free = departure;
      nanoseconds delay = o.delay;
      if (o.jitter.count() > 0) {
        const double u = static_cast<double>(p.jitter_rng() >> 11) * 0x1.0p-53;  // [0, 1)
        delay +=
            nanoseconds(static_cast<std::int64_t>((2 * u - 1) * static_cast<double>(nanoseconds(o.jitter).count())));
      }
      c.deliver_at = std::max(departure + delay, p.last_delivery);
      p.queued += c.bytes.size();
      p.read += c.bytes.size();
    } else {
      // A FIN, reset or cut follows the bytes before it.
      c.deliver_at = std::max(std::max(now, p.link_free) + nanoseconds(o.delay), p.last_delivery);
    }
    p.last_delivery = c.deliver_at;
    p.queue.push_back(std::move(c));
    p.writer_wake.notify();
  }

  /// Bytes the reader of `d` may take now before the next fault offset (0: the fault is due).
  std::uint64_t room_before_fault(Direction d, std::uint64_t want) const {
    if (!faulty || d != o.fault_direction) return want;
    const std::uint64_t read = d == Direction::up ? up.read : down.read;
    auto limit = [&](std::optional<std::uint64_t> at, bool applied) {
      if (at && !applied && *at >= read) want = std::min(want, *at - read);
    };
    limit(cut_at, false);
    limit(o.stall_after, stalled);
    limit(o.slow_after, slowed);
    return want;
  }

  void apply_offset_faults(Direction d) {
    if (!faulty || d != o.fault_direction) return;
    const std::uint64_t read = pipe(d).read;
    if (o.stall_after && !stalled && read >= *o.stall_after) {
      stalled = true;
      // The link carries nothing, either way, from the moment the last byte before the offset has left.
      const auto until = std::max(up.link_free, down.link_free) + nanoseconds(o.stall_for);
      up.link_free = down.link_free = until;
      owner->emit(fmt::format("linkem: conn {} stall at={} for={}ms", index, read,
                              std::chrono::duration_cast<std::chrono::milliseconds>(o.stall_for).count()));
    }
    if (o.slow_after && !slowed && read >= *o.slow_after) {
      slowed = true;
      up.rate = down.rate = o.slow_rate;
      owner->emit(fmt::format("linkem: conn {} slow at={}", index, read));
    }
  }

  tcp::socket& source(Direction d) { return d == Direction::up ? client : target; }
  tcp::socket& destination(Direction d) { return d == Direction::up ? target : client; }
  static const char* from_name(Direction d) { return d == Direction::up ? "client" : "target"; }

  asio::awaitable<void> reader(Direction d) {
    auto self = shared_from_this();
    Pipe& p = pipe(d);
    std::vector<char> buf(chunk_size(0));
    while (!closed) {
      apply_offset_faults(d);
      const std::size_t max_chunk = chunk_size(p.rate);  // --slow-rate changes it
      std::uint64_t want = room_before_fault(d, max_chunk);
      if (want == 0) {  // only a cut stops a direction for good
        if (cut_at && faulty && d == o.fault_direction && p.read >= *cut_at) {
          enqueue(d, Chunk{Kind::cut, {}, {}});
          co_return;
        }
        want = max_chunk;
      }
      // Bottleneck buffer: wait while the bytes waiting for the link (plus this read) would exceed the queue, and
      // while the writer is blocked on a slow destination.
      for (;;) {
        if (closed) co_return;
        const auto now = Clock::now();
        const std::uint64_t hard_cap =
            o.queue + 4 * max_chunk +
            static_cast<std::uint64_t>(p.rate * std::chrono::duration<double>(o.delay + o.jitter).count());
        if (p.queued + want > hard_cap) {
          co_await p.reader_wake.wait_until(Clock::time_point::max());
          continue;
        }
        if (p.rate > 0 && p.link_free > now) {
          const double backlog = std::chrono::duration<double>(p.link_free - now).count() * p.rate;
          if (backlog + static_cast<double>(want) > static_cast<double>(o.queue)) {
            const double excess = backlog + static_cast<double>(want) - static_cast<double>(o.queue);
            co_await p.reader_wake.wait_until(now + transmit_time(static_cast<std::size_t>(excess) + 1, p.rate));
            continue;
          }
        }
        break;
      }
      auto [ec, n] = co_await source(d).async_read_some(asio::buffer(buf.data(), want), use_nothrow);
      if (closed) co_return;
      if (ec) {
        const bool eof = ec == asio::error::eof;
        owner->emit(fmt::format("linkem: conn {} {} from {}", index, eof ? "eof" : "reset", from_name(d)));
        enqueue(d, Chunk{eof ? Kind::eof : Kind::reset, {}, {}});
        co_return;
      }
      enqueue(d, Chunk{Kind::data, std::vector<char>(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n)), {}});
    }
  }

  asio::awaitable<void> writer(Direction d) {
    auto self = shared_from_this();
    Pipe& p = pipe(d);
    std::vector<asio::const_buffer> gather;
    while (!closed) {
      if (p.queue.empty()) {
        co_await p.writer_wake.wait_until(Clock::time_point::max());
        continue;
      }
      const auto now = Clock::now();
      if (p.queue.front().deliver_at > now) {
        co_await p.writer_wake.wait_until(p.queue.front().deliver_at);
        continue;
      }
      const Kind kind = p.queue.front().kind;
      if (kind == Kind::data) {
        gather.clear();
        std::size_t count = 0;
        std::size_t bytes = 0;
        for (const Chunk& c : p.queue) {
          if (c.kind != Kind::data || c.deliver_at > now || bytes >= std::size_t{256} * 1024) break;
          gather.emplace_back(c.bytes.data(), c.bytes.size());
          bytes += c.bytes.size();
          ++count;
        }
        auto [ec, n] = co_await asio::async_write(destination(d), gather, use_nothrow);
        if (closed) co_return;
        if (ec) {
          error = fmt::format("write to {}: {}", d == Direction::up ? "target" : "client", ec.message());
          reset_both();
          finish();
          co_return;
        }
        for (std::size_t i = 0; i < count; ++i) p.queue.pop_front();
        p.queued -= bytes;
        p.delivered += bytes;
        p.reader_wake.notify();
        continue;
      }
      p.queue.pop_front();
      if (kind == Kind::eof) {
        boost::system::error_code ignored;
        destination(d).shutdown(tcp::socket::shutdown_send, ignored);
        p.done = true;
        if (up.done && down.done) {
          close_both();
          finish();
        }
        co_return;
      }
      if (kind == Kind::cut) {
        cut = true;
        co_await drain(destination(d));
      }
      reset_both();
      finish();
      co_return;
    }
  }

  /// Waits (bounded) until the destination has taken every byte written before the cut: the bytes before the cut
  /// offset went through the radio; only what follows is lost.
  asio::awaitable<void> drain(tcp::socket& s) {
    asio::steady_timer t(owner->io);
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    while (!closed && s.is_open() && Clock::now() < deadline) {
      int pending = 0;
      if (::ioctl(s.native_handle(), SIOCOUTQ, &pending) != 0 || pending == 0) break;
      t.expires_after(std::chrono::milliseconds(1));
      co_await t.async_wait(use_nothrow);
    }
  }

  void close_both() {
    boost::system::error_code ignored;
    client.close(ignored);
    target.close(ignored);
  }

  void reset_both() {
    boost::system::error_code ignored;
    for (tcp::socket* s : {&client, &target}) {
      if (!s->is_open()) continue;
      s->set_option(asio::socket_base::linger(true, 0), ignored);
      s->close(ignored);
    }
  }

  void finish() {
    if (closed) return;
    closed = true;
    for (Pipe* p : {&up, &down}) {
      p->writer_wake.timer.cancel();
      p->reader_wake.timer.cancel();
    }
    std::string line = fmt::format("linkem: conn {} closed up={} down={} cut={}", index, up.delivered, down.delivered,
                                   cut ? "yes" : "no");
    if (cut) line += fmt::format(" at={}", pipe(o.fault_direction).delivered);
    if (!error.empty()) line += " error=" + error;
    owner->emit(line);
  }

  void stop() {
    if (closed) return;
    error = "stopped";
    reset_both();
    finish();
  }

  std::shared_ptr<Linkem::Impl> owner;
  const Options& o;
  std::uint64_t index;
  tcp::socket client;
  tcp::socket target;
  Pipe up;
  Pipe down;
  bool faulty = false;
  std::optional<std::uint64_t> cut_at;
  bool stalled = false;
  bool slowed = false;
  bool cut = false;
  bool closed = false;
  std::string error;
};

}  // namespace

asio::awaitable<void> Linkem::Impl::accept_loop() {
  auto self = shared_from_this();
  while (!stopped) {
    auto [ec, sock] = co_await acceptor.async_accept(use_nothrow);
    if (stopped) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      continue;  // e.g. EMFILE: keep serving the connections we have
    }
    auto conn = std::make_shared<Conn>(self, next_index++, std::move(sock));
    std::erase_if(conns, [](const auto& w) { return w.expired(); });
    conns.push_back(conn);
    asio::co_spawn(io, conn->run(), asio::detached);
  }
}

Linkem::Linkem(asio::io_context& io, Options options) : impl_(std::make_shared<Impl>(io, std::move(options))) {}

Linkem::~Linkem() {
  if (!impl_) return;
  try {
    stop();
  } catch (const std::exception& e) {  // closing sockets does not throw with error_code overloads; be sure anyway
    std::fprintf(stderr, "linkem: stopping: %s\n", e.what());
  }
}

std::uint16_t Linkem::port() const { return impl_->acceptor.local_endpoint().port(); }

void Linkem::on_event(std::function<void(const std::string&)> sink) { impl_->sink = std::move(sink); }

void Linkem::start() { asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached); }

void Linkem::stop() {
  impl_->stopped = true;
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
  for (auto& w : impl_->conns)
    if (auto c = w.lock()) c->stop();
  impl_->conns.clear();
}

}  // namespace otter::linkem
