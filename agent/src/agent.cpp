// otter-agent — the event loop: listeners, sessions, signals, reboot hooks. Everything runs on one thread.
#include "otter/agent/agent.hpp"

#include <spawn.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "otter/core/codec.hpp"
#include "otter/core/receiver.hpp"
#include "otter/ports/openssl_crypto.hpp"
#include "otter/ports/posix_storage.hpp"

namespace otter::agent {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

constexpr std::size_t kReadBuffer = std::size_t{256} * 1024;
/// How long a finished session keeps reading (and discarding) after its last frame, so that closing does not reset
/// the connection under the peer before it has read that frame.
constexpr std::uint64_t kLingerMs = 1000;

std::string format_endpoint(const tcp::endpoint& ep) {
  const auto addr = ep.address();
  if (addr.is_v6()) return "[" + addr.to_string() + "]:" + std::to_string(ep.port());
  return addr.to_string() + ":" + std::to_string(ep.port());
}

std::string printable(core::ByteView v) {
  std::string s;
  s.reserve(v.size);
  for (std::size_t i = 0; i < v.size; ++i) {
    const auto c = static_cast<char>(v.data[i]);
    s.push_back(v.data[i] >= 0x20 && v.data[i] != 0x7F ? c : '?');
  }
  return s;
}

const char* kind_name(core::Kind k) { return k == core::Kind::firmware ? "firmware" : "file"; }

}  // namespace

class Session;

/// One event-loop thread and the sessions it runs. A device's listener and all its sessions live on one shard, so a
/// device's state is only ever touched by that shard's thread; with many simulated devices, one device's commit
/// (which waits for fsync) does not stall the devices of other shards.
struct Shard {
  asio::io_context io{1};
  std::list<std::weak_ptr<Session>> sessions;
};

/// One (simulated) device: its storage state, listener and session count.
struct Device {
  Device(DeviceSpec s, std::uint64_t max_size, Shard& sh)
      : spec(std::move(s)), storage(spec.root, max_size), shard(sh), acceptor(sh.io) {}
  DeviceSpec spec;
  ports::PosixDevice storage;
  Shard& shard;
  tcp::acceptor acceptor;
  std::string address;  // as bound
  std::size_t active = 0;
};

struct Agent::Impl {
  Impl(Options o, std::string k) : opts(std::move(o)), key(std::move(k)), shards(make_first_shard()), signals(io()) {}

  static std::vector<std::unique_ptr<Shard>> make_first_shard() {
    std::vector<std::unique_ptr<Shard>> v;
    v.push_back(std::make_unique<Shard>());
    return v;
  }
  /// Shard 0: the main thread's loop (signals, stop()).
  asio::io_context& io() { return shards.front()->io; }

  Options opts;
  std::string key;
  std::vector<std::unique_ptr<Shard>> shards;
  asio::signal_set signals;
  std::list<std::unique_ptr<Device>> devices;  // stable addresses (sessions refer to them); fixed after start()
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> interrupted{0};     // sessions interrupted by stop_all, summed over the shards
  std::atomic<std::size_t> shards_stopped{0};  // shards that have run stop_shard
  const Clock::time_point epoch = Clock::now();

  [[nodiscard]] std::uint64_t now_ms() const {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - epoch).count());
  }
  [[nodiscard]] Clock::duration tick_interval() const {
    // Fine enough to honour short idle timeouts (tests use 1 s), cheap enough for thousands of sessions.
    const auto ms = std::clamp<std::uint32_t>(opts.idle_timeout_ms / 4, 50, 500);
    return std::chrono::milliseconds(ms);
  }

  awaitable<void> accept_loop(Device& dev);
  awaitable<void> reject_busy(tcp::socket sock, Device& dev);
  void run_reboot_hook(const Device& dev, const std::string& name);
  void stop_all();
  void stop_shard(Shard& shard);
};

// --- Session ----------------------------------------------------------------------------------------------------

class Session final : public std::enable_shared_from_this<Session>, public core::ReceiverObserver {
 public:
  Session(Agent::Impl& agent, Device& dev, tcp::socket sock)
      : agent_(agent),
        dev_(dev),
        sock_(std::move(sock)),
        tick_timer_(sock_.get_executor()),
        rate_timer_(sock_.get_executor()),
        storage_(dev.storage),
        receiver_(make_config(agent, dev), storage_, crypto_, this),
        buf_(std::make_unique<std::uint8_t[]>(kReadBuffer)),
        started_(Clock::now()) {
    ++dev_.active;
    boost::system::error_code ec;
    const auto remote = sock_.remote_endpoint(ec);
    peer_ = ec ? std::string("?") : format_endpoint(remote);
    sock_.set_option(tcp::no_delay(true), ec);
    if (agent_.opts.rate != 0) {
      burst_ = std::clamp<double>(static_cast<double>(agent_.opts.rate) / 10.0, 1.0, double(kReadBuffer));
      tokens_ = burst_;
      refilled_ = Clock::now();
    }
  }
  ~Session() { --dev_.active; }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  awaitable<void> run();
  /// The agent is stopping: end the session at its next step (an open transfer is suspended for resume).
  void interrupt() {
    interrupted_ = true;
    wake();
  }

  // ReceiverObserver
  void on_begin(core::ByteView name, core::Kind kind, std::uint64_t size, std::uint64_t offset) override {
    name_ = printable(name);
    kind_ = kind;
    size_ = size;
    offset_ = offset;
    spdlog::debug("{} {}: push {} '{}' size {} from offset {}", dev_.spec.id, peer_, kind_name(kind), name_, size,
                  offset);
  }
  void on_committed(core::ByteView name, core::Kind /*kind*/, bool reboot) override {
    name_ = printable(name);
    reboot_ = reboot;
  }
  void on_error(ErrorCode code, const char* message) override {
    error_ = code;
    error_message_ = message;
  }

 private:
  static core::ReceiverConfig make_config(const Agent::Impl& agent, const Device& dev) {
    core::ReceiverConfig cfg;
    cfg.key = core::ByteView(agent.key.data(), agent.key.size());
    cfg.device_id = core::ByteView(dev.spec.id.data(), dev.spec.id.size());
    cfg.caps =
        static_cast<std::uint16_t>(core::caps::file | core::caps::resume | core::caps::stat | core::caps::reboot |
                                   core::caps::digest_last | (agent.opts.firmware ? core::caps::firmware : 0));
    cfg.window = agent.opts.window;
    cfg.max_size = agent.opts.max_size;
    cfg.idle_timeout_ms = agent.opts.idle_timeout_ms;
    return cfg;
  }

  awaitable<void> ticker(std::shared_ptr<Session> self);
  awaitable<bool> flush();
  awaitable<std::size_t> throttle();
  awaitable<void> linger();
  void wake() {
    woken_ = true;
    boost::system::error_code ec;
    sock_.cancel(ec);
    rate_timer_.cancel();
  }
  void log_end();

  Agent::Impl& agent_;
  Device& dev_;
  tcp::socket sock_;
  asio::steady_timer tick_timer_;
  asio::steady_timer rate_timer_;
  ports::OpenSslCrypto crypto_;
  ports::PosixStorage storage_;
  core::Receiver receiver_;
  std::unique_ptr<std::uint8_t[]> buf_;
  std::size_t pos_ = 0;  // unconsumed input: buf_[pos_, pos_ + len_)
  std::size_t len_ = 0;

  bool woken_ = false;        // the ticker (or stop) cancelled the pending operation
  bool interrupted_ = false;  // the agent is stopping
  bool writing_ = false;
  std::uint64_t write_started_ms_ = 0;
  bool draining_ = false;
  std::uint64_t drain_deadline_ms_ = 0;
  bool done_ = false;

  // Token bucket (--rate).
  double burst_ = 0;
  double tokens_ = 0;
  Clock::time_point refilled_;

  // For the session log line.
  std::string peer_;
  Clock::time_point started_;
  std::string name_ = "-";
  core::Kind kind_ = core::Kind::file;
  std::uint64_t size_ = 0;
  std::uint64_t offset_ = 0;
  std::uint64_t bytes_in_ = 0;
  bool reboot_ = false;
  ErrorCode error_ = ErrorCode::ok;
  std::string error_message_;
};

awaitable<void> Session::run() {
  auto self = shared_from_this();
  receiver_.start(agent_.now_ms());
  asio::co_spawn(sock_.get_executor(), ticker(self), asio::detached);

  for (;;) {
    woken_ = false;
    if (!co_await flush()) break;
    if (receiver_.finished()) break;
    if (interrupted_) {
      receiver_.peer_closed();
      break;
    }
    if (len_ > 0) {
      // Back-pressure: the receiver takes what it can; the rest waits for the next round (after its output).
      const std::size_t n = receiver_.feed(buf_.get() + pos_, len_, agent_.now_ms());
      pos_ += n;
      len_ -= n;
      if (n == 0 && receiver_.output().empty() && !receiver_.finished()) {
        spdlog::error("{} {}: receiver consumed nothing and has nothing to say; closing", dev_.spec.id, peer_);
        receiver_.peer_closed();
        break;
      }
      continue;
    }
    std::size_t want = kReadBuffer;
    if (agent_.opts.rate != 0) {
      want = co_await throttle();
      if (want == 0) continue;  // woken: flush / stop first
    }
    auto [ec, n] = co_await sock_.async_read_some(asio::buffer(buf_.get(), want), use_nothrow);
    if (ec) {
      if (ec == asio::error::operation_aborted && !interrupted_) continue;  // the ticker has output for the peer
      receiver_.peer_closed();                                              // EOF, reset, or the agent stops
      break;
    }
    if (agent_.opts.rate != 0) tokens_ -= static_cast<double>(n);
    bytes_in_ += n;
    pos_ = 0;
    len_ = n;
  }

  // Every frame of the session has been written (or the connection is gone).
  if (receiver_.result() == ErrorCode::ok && receiver_.reboot_requested()) {
    spdlog::warn("{}: reboot requested after '{}'", dev_.spec.id, name_);
    if (!agent_.opts.on_reboot.empty()) agent_.run_reboot_hook(dev_, name_);
  }
  co_await linger();
  done_ = true;
  tick_timer_.cancel();
  rate_timer_.cancel();
  boost::system::error_code ec;
  sock_.close(ec);
  log_end();
}

awaitable<bool> Session::flush() {
  for (;;) {
    const core::ByteView out = receiver_.output();
    if (out.empty()) co_return true;
    writing_ = true;
    write_started_ms_ = agent_.now_ms();
    auto [ec, n] = co_await asio::async_write(sock_, asio::buffer(out.data, out.size), use_nothrow);
    writing_ = false;
    if (ec) {
      receiver_.peer_closed();
      co_return false;
    }
    receiver_.output_consumed(n);
  }
}

awaitable<std::size_t> Session::throttle() {
  const auto rate = static_cast<double>(agent_.opts.rate);
  for (;;) {
    const auto now = Clock::now();
    tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - refilled_).count() * rate);
    refilled_ = now;
    if (tokens_ >= 1.0) co_return std::min(kReadBuffer, static_cast<std::size_t>(tokens_));
    // Wait until a whole burst is available: fewer, larger reads (at most ~10 per second).
    const auto wait = std::chrono::duration<double>((burst_ - tokens_) / rate);
    rate_timer_.expires_after(std::chrono::duration_cast<Clock::duration>(wait));
    co_await rate_timer_.async_wait(use_nothrow);
    if (woken_ || interrupted_) co_return 0;
  }
}

awaitable<void> Session::ticker(std::shared_ptr<Session> /*keep_alive*/) {
  while (!done_) {
    tick_timer_.expires_after(agent_.tick_interval());
    co_await tick_timer_.async_wait(use_nothrow);
    if (done_) break;
    const std::uint64_t now = agent_.now_ms();
    if (draining_) {
      if (now >= drain_deadline_ms_) wake();
      continue;
    }
    if (writing_) {
      // A peer that does not read what we send is as dead as a silent one.
      if (now - write_started_ms_ > agent_.opts.idle_timeout_ms) wake();
      continue;
    }
    receiver_.tick(now);
    if (!receiver_.output().empty() || receiver_.finished()) wake();
  }
}

awaitable<void> Session::linger() {
  if (!sock_.is_open() || interrupted_) co_return;
  boost::system::error_code ec;
  sock_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  draining_ = true;
  drain_deadline_ms_ = agent_.now_ms() + kLingerMs;
  for (;;) {
    auto [e, n] = co_await sock_.async_read_some(asio::buffer(buf_.get(), kReadBuffer), use_nothrow);
    if (e) break;  // EOF (the peer closed too), reset, or the linger deadline
  }
}

void Session::log_end() {
  const double secs = std::chrono::duration<double>(Clock::now() - started_).count();
  const ErrorCode result = receiver_.result();
  if (result == ErrorCode::ok && name_ == "-") {
    spdlog::info("{} {}: stat result OK bytes {} in {:.3f}s", dev_.spec.id, peer_, bytes_in_, secs);
  } else if (result == ErrorCode::ok) {
    spdlog::info("{} {}: {} '{}' size {} offset {} result OK bytes {} in {:.3f}s", dev_.spec.id, peer_,
                 kind_name(kind_), name_, size_, offset_, bytes_in_, secs);
  } else {
    spdlog::info("{} {}: name '{}' size {} offset {} result {} ({}) bytes {} in {:.3f}s{}{}", dev_.spec.id, peer_,
                 name_, size_, offset_, error_name(result), static_cast<unsigned>(result), bytes_in_, secs,
                 error_message_.empty() ? "" : ": ", error_message_);
  }
}

// --- Agent::Impl ------------------------------------------------------------------------------------------------

awaitable<void> Agent::Impl::accept_loop(Device& dev) {
  asio::steady_timer backoff(dev.shard.io);
  for (;;) {
    auto [ec, sock] = co_await dev.acceptor.async_accept(use_nothrow);
    if (stopping) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      // EMFILE / ENFILE and the like: say so, breathe, and keep serving.
      spdlog::warn("{}: accept on {} failed: {}", dev.spec.id, dev.address, ec.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(use_nothrow);
      continue;
    }
    if (dev.active >= opts.max_sessions) {
      asio::co_spawn(dev.shard.io, reject_busy(std::move(sock), dev), asio::detached);
      continue;
    }
    auto session = std::make_shared<Session>(*this, dev, std::move(sock));
    auto& sessions = dev.shard.sessions;
    sessions.remove_if([](const std::weak_ptr<Session>& w) { return w.expired(); });
    sessions.push_back(session);
    asio::co_spawn(dev.shard.io, session->run(), asio::detached);
  }
}

awaitable<void> Agent::Impl::reject_busy(tcp::socket sock, Device& dev) {
  static constexpr std::string_view kMsg = "the device serves no more connections";
  std::uint8_t frame[core::kFrameHeaderSize + core::kErrorFixed + kMsg.size()];
  const std::size_t n =
      core::encode_error(ErrorCode::busy, core::ByteView(kMsg.data(), kMsg.size()), frame, sizeof frame);
  boost::system::error_code ec;
  const auto remote = sock.remote_endpoint(ec);
  spdlog::info("{} {}: refused: {} sessions already open (BUSY)", dev.spec.id,
               ec ? std::string("?") : format_endpoint(remote), dev.active);
  co_await asio::async_write(sock, asio::buffer(frame, n), use_nothrow);
  sock.shutdown(tcp::socket::shutdown_send, ec);
  sock.close(ec);
}

namespace {

extern "C" char** environ;

/// Runs `/bin/sh -c COMMAND otter-on-reboot ID NAME PATH` and logs how it ended. The child is reaped through a
/// pidfd watched by the event loop (Boost.Process v2 of Boost 1.81 does not build with std::filesystem, and its
/// Boost.Filesystem variant is not installed), so the loop never blocks on it.
awaitable<void> reboot_hook(asio::io_context& io, std::string command, std::string id, std::string name,
                            std::string path) {
  std::string arg0 = "/bin/sh";
  std::string arg1 = "-c";
  std::string arg3 = "otter-on-reboot";
  char* argv[] = {arg0.data(), arg1.data(), command.data(), arg3.data(),
                  id.data(),   name.data(), path.data(),    nullptr};
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);  // the agent ignores SIGPIPE; the hook gets the default
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], nullptr, &attr, argv, environ);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    spdlog::error("{}: cannot run the reboot hook: {}", id, std::strerror(rc));
    co_return;
  }
  spdlog::info("{}: running reboot hook (pid {}): {}", id, pid, command);
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    asio::posix::stream_descriptor watch(io, pidfd);
    co_await watch.async_wait(asio::posix::stream_descriptor::wait_read, use_nothrow);
  }
  int status = 0;
  // Without a pidfd (kernel < 5.3) this blocks until the hook ends: acceptable for a short hook on such a board.
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    spdlog::info("{}: reboot hook done", id);
  } else if (WIFEXITED(status)) {
    spdlog::error("{}: reboot hook exited with status {}", id, WEXITSTATUS(status));
  } else {
    spdlog::error("{}: reboot hook killed by signal {}", id, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  }
}

}  // namespace

void Agent::Impl::run_reboot_hook(const Device& dev, const std::string& name) {
  asio::io_context& io = dev.shard.io;
  asio::co_spawn(io, reboot_hook(io, opts.on_reboot, dev.spec.id, name, dev.spec.root + "/" + name), asio::detached);
}

// Runs on shard 0 (the signal handler or stop()); each shard then stops its own devices and sessions.
void Agent::Impl::stop_all() {
  if (stopping.exchange(true)) return;
  boost::system::error_code ec;
  signals.cancel(ec);
  for (auto& sh : shards) asio::post(sh->io, [this, shard = sh.get()] { stop_shard(*shard); });
}

void Agent::Impl::stop_shard(Shard& shard) {
  boost::system::error_code ec;
  for (auto& d : devices)
    if (&d->shard == &shard) d->acceptor.close(ec);
  std::size_t open = 0;
  for (auto& w : shard.sessions) {
    if (auto s = w.lock()) {
      s->interrupt();
      ++open;
    }
  }
  shard.sessions.clear();
  // One line for the whole agent, from the last shard to stop.
  const std::size_t total = interrupted.fetch_add(open) + open;
  if (shards_stopped.fetch_add(1) + 1 == shards.size())
    spdlog::info("stopping: {} open session(s) interrupted (partial copies kept for resume)", total);
}

// --- Agent ------------------------------------------------------------------------------------------------------

Agent::Agent(Options options, std::string key) : impl_(std::make_unique<Impl>(std::move(options), std::move(key))) {}

Agent::~Agent() = default;

Result<std::vector<Endpoint>> Agent::start() {
  Impl& m = *impl_;
  auto specs = device_specs(m.opts);
  if (!specs) return tl::unexpected(specs.error());

  boost::system::error_code ec;
  const auto address = asio::ip::make_address(m.opts.listen_host, ec);
  if (ec) {
    return make_error(ErrorCode::invalid_argument,
                      "--listen: '" + m.opts.listen_host + "' is not an IP address: " + ec.message());
  }

  std::size_t threads = m.opts.threads;
  if (threads == 0) threads = specs->size() == 1 ? 1 : std::min<std::size_t>(specs->size(), 8);
  threads = std::min(threads, specs->size());
  while (m.shards.size() < threads) m.shards.push_back(std::make_unique<Shard>());

  std::vector<Endpoint> endpoints;
  std::size_t next_shard = 0;
  for (auto& spec : *specs) {
    std::error_code fec;
    std::filesystem::create_directories(spec.root, fec);
    if (fec || !std::filesystem::is_directory(spec.root)) {
      return make_error(ErrorCode::storage, "cannot create the root directory " + spec.root + ": " +
                                                (fec ? fec.message() : std::string("not a directory")));
    }
    auto dev = std::make_unique<Device>(spec, m.opts.max_size, *m.shards[next_shard++ % m.shards.size()]);
    const tcp::endpoint ep(address, spec.port);
    auto& acc = dev->acceptor;
    acc.open(ep.protocol(), ec);
    if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return make_error(ErrorCode::io,
                        "device " + spec.id + ": cannot listen on " + format_endpoint(ep) + ": " + ec.message());
    }
    const auto bound = acc.local_endpoint(ec);
    dev->address = format_endpoint(bound);
    endpoints.push_back({spec.id, dev->address, bound.port(), spec.root});
    m.devices.push_back(std::move(dev));
  }
  for (auto& d : m.devices) asio::co_spawn(d->shard.io, m.accept_loop(*d), asio::detached);

  if (m.shards.size() > 1) spdlog::info("{} devices on {} event-loop threads", m.devices.size(), m.shards.size());
  m.signals.add(SIGINT);
  m.signals.add(SIGTERM);
  m.signals.async_wait([&m](const boost::system::error_code& e, int sig) {
    if (e) return;
    spdlog::info("signal {} received, shutting down", sig);
    m.stop_all();
  });
  return endpoints;
}

void Agent::run() {
  Impl& m = *impl_;
  std::vector<std::thread> workers;
  for (std::size_t i = 1; i < m.shards.size(); ++i) {
    workers.emplace_back([&m, shard = m.shards[i].get()] {
      try {
        shard->io.run();
      } catch (const std::exception& e) {
        spdlog::critical("event loop failed: {}", e.what());
        asio::post(m.io(), [&m] { m.stop_all(); });
      }
    });
  }
  m.io().run();
  for (auto& w : workers) w.join();
  spdlog::info("stopped");
}

void Agent::stop() {
  asio::post(impl_->io(), [m = impl_.get()] { m->stop_all(); });
}

std::uint64_t raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max == RLIM_INFINITY ? std::max<rlim_t>(rl.rlim_cur, 1u << 20) : rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  return rl.rlim_cur;
}

}  // namespace otter::agent
