#include "commands.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "format.hpp"
#include "otter/common/hex.hpp"
#include "otter/common/keyfile.hpp"
#include "otter/common/push_client_asio.hpp"
#include "progress.hpp"
#include "target.hpp"

namespace otter::cli {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

/// Runs a transfer on a private io_context; SIGINT / SIGTERM cancel it (CANCELED), so that the progress line is
/// cleared, --json still prints its object, and the device keeps its partial copy for a resume. A second signal
/// kills the process as usual.
template <class T>
Result<T> run_interruptible(asio::awaitable<Result<T>> op) {
  asio::io_context io(1);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::cancellation_signal cancel;
  std::optional<Result<T>> result;
  int caught = 0;
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    caught = sig;
    boost::system::error_code ignored;
    signals.clear(ignored);  // default dispositions again
    cancel.emit(asio::cancellation_type::terminal);
  });
  asio::co_spawn(io, std::move(op),
                 asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, Result<T> r) {
                   result = e ? Result<T>(make_error(ErrorCode::internal, "unexpected exception")) : std::move(r);
                   boost::system::error_code ignored;
                   signals.cancel(ignored);
                 }));
  io.run();
  if (!result) return make_error(ErrorCode::internal, "transfer did not complete");
  if (caught != 0 && !*result && result->error().code == ErrorCode::canceled) {
    return make_error(ErrorCode::canceled, fmt::format("interrupted by {}", caught == SIGINT ? "SIGINT" : "SIGTERM"));
  }
  return std::move(*result);
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(std::max<long long>(1, std::llround(seconds * 1000.0)));
}

int report_error(const CommonArgs& c, const Error& e) {
  if (c.json) {
    std::cout << dump_json(error_json(e)) << std::endl;
  } else {
    std::cerr << error_line(e) << std::endl;
  }
  return exit_code_for(e.code);
}

/// The local file must exist, be a regular file and be readable: anything else is a usage error.
Result<std::uint64_t> check_local_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return make_error(err == ENOENT ? ErrorCode::not_found : ErrorCode::invalid_argument,
                      fmt::format("{}: {}", path, std::strerror(err)));
  }
  struct stat st {};
  const bool ok = ::fstat(fd, &st) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) return make_error(ErrorCode::invalid_argument, fmt::format("{}: {}", path, std::strerror(err)));
  if (!S_ISREG(st.st_mode)) {
    return make_error(ErrorCode::invalid_argument, fmt::format("{} is not a regular file", path));
  }
  return static_cast<std::uint64_t>(st.st_size);
}

struct Connection {
  Target target;
  std::string key;
};

Result<Connection> prepare(const CommonArgs& c) {
  auto target = parse_target(c.target, core::kDefaultPort);
  if (!target) return tl::unexpected(target.error().with_context("--to"));
  auto key = read_key_file(c.key_file);
  if (!key) return tl::unexpected(key.error());
  return Connection{*target, std::move(*key)};
}

}  // namespace

int run_push(const PushArgs& a) {
  const auto t0 = Clock::now();
  const CommonArgs& c = a.common;
  auto conn = prepare(c);
  if (!conn) return report_error(c, conn.error());
  auto size = check_local_file(a.file);
  if (!size) return report_error(c, size.error());

  PushOptions o;
  o.host = conn->target.host;
  o.port = conn->target.port;
  o.key = std::move(conn->key);
  o.name = a.name_given ? a.name : std::filesystem::path(a.file).filename().string();
  o.kind = a.kind == "firmware" ? core::Kind::firmware : core::Kind::file;
  o.flags = a.reboot ? core::flags::reboot : 0;
  o.path = a.file;
  o.size = *size;
  o.connect_timeout = to_ms(c.connect_timeout);
  o.idle_timeout = to_ms(c.timeout);
  o.chunk_size = a.chunk_size;
  o.skip_unchanged = a.skip_unchanged;

  ProgressBar bar(!c.quiet);
  if (!a.sha256.empty()) {
    auto d = parse_sha256(a.sha256);
    if (!d) return report_error(c, d.error().with_context("--sha256"));
    o.sha256 = *d;
  } else {
    bar.start("hashing " + o.name, 0);
    auto d = sha256_file(a.file, [&](std::uint64_t done, std::uint64_t total) { bar.update(done, total); });
    bar.clear();
    if (!d) return report_error(c, d.error());
    o.sha256 = *d;
  }
  spdlog::debug("push {} ({} B, sha256 {}) as '{}' to {}", a.file, *size, to_hex(*o.sha256), o.name,
                format_endpoint(o.host, o.port));

  bool started = false;
  auto result = run_interruptible(async_push(o, [&](std::uint64_t acked, std::uint64_t total) {
    if (!started) {
      started = true;
      bar.start(o.name, acked);
    }
    bar.update(acked, total);
  }));
  bar.clear();
  const double seconds = seconds_since(t0);
  if (!result) return report_error(c, result.error());

  if (c.json) {
    std::cout << dump_json(push_json(o.name, o.kind, *result, seconds)) << std::endl;
  } else if (!c.quiet) {
    std::cout << push_line(o.name, *result, seconds) << std::endl;
  }
  return kExitOk;
}

int run_stat(const StatArgs& a) {
  const CommonArgs& c = a.common;
  auto conn = prepare(c);
  if (!conn) return report_error(c, conn.error());

  StatOptions o;
  o.host = conn->target.host;
  o.port = conn->target.port;
  o.key = std::move(conn->key);
  o.name = a.name;
  o.connect_timeout = to_ms(c.connect_timeout);
  o.idle_timeout = to_ms(c.timeout);
  auto result = run_interruptible(async_stat(o));
  if (!result) return report_error(c, result.error());
  if (c.json) {
    std::cout << dump_json(stat_json(o.name, *result)) << std::endl;
  } else if (!c.quiet) {
    std::cout << stat_line(o.name, *result) << std::endl;
  }
  return kExitOk;
}

}  // namespace otter::cli
