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
#include "otter/common/adapters_asio.hpp"
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
                 asio::bind_cancellation_slot(cancel.slot(), [&](const std::exception_ptr& e, Result<T> r) {
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

namespace {

/// `otter push --protocol arduino-ota|webrepl|legacy`: a stock device, through its adapter.
int run_adapter_push(const PushArgs& a) {
  const auto t0 = Clock::now();
  const CommonArgs& c = a.common;
  const auto usage = [&](const std::string& message) {
    return report_error(c, Error(ErrorCode::invalid_argument, message));
  };
  auto protocol = adapters::parse_protocol(a.protocol);
  if (!protocol) return report_error(c, protocol.error().with_context("--protocol"));
  const char* pname = adapters::protocol_name(*protocol);
  if (!c.key_file.empty())
    return usage(fmt::format("--key-file is the otter protocol's; {} takes --password-file", pname));
  if (a.reboot || a.skip_unchanged || !a.sha256.empty())
    return usage(fmt::format("--reboot, --skip-unchanged and --sha256 belong to the otter protocol, not {}", pname));
  auto target = parse_target(c.target, adapters::default_port(*protocol));
  if (!target) return report_error(c, target.error().with_context("--to"));
  auto size = check_local_file(a.file);
  if (!size) return report_error(c, size.error());

  adapters::Request r;
  r.host = target->host;
  r.port = target->port;
  r.path = a.file;
  r.name = a.name_given ? a.name : std::filesystem::path(a.file).filename().string();
  auto payload = adapters::parse_payload(
      !a.kind.empty() ? a.kind : (*protocol == adapters::Protocol::arduino_ota ? "firmware" : "file"));
  if (!payload) return report_error(c, payload.error().with_context("--kind"));
  r.payload = *payload;
  if (!a.password_file.empty()) {
    auto pw = read_password_file(a.password_file);
    if (!pw) return report_error(c, pw.error());
    r.password = std::move(*pw);
  }
  if (!a.callback.empty()) {
    if (*protocol != adapters::Protocol::arduino_ota) return usage("--callback is for --protocol arduino-ota");
    auto cb = parse_target(a.callback, 0);
    if (!cb) return report_error(c, cb.error().with_context("--callback"));
    r.callback_host = cb->host;
    r.callback_port = cb->port;
  }
  if (a.verify && *protocol != adapters::Protocol::webrepl) return usage("--verify is for --protocol webrepl");
  if (a.force && *protocol != adapters::Protocol::legacy && *protocol != adapters::Protocol::arduino_ota)
    return usage("--force is for --protocol legacy or arduino-ota");
  r.verify = a.verify;
  r.force = a.force;
  r.connect_timeout = to_ms(c.connect_timeout);
  r.idle_timeout = to_ms(c.timeout);
  const std::string device = format_endpoint(r.host, r.port);
  spdlog::debug("pushing {} ({} bytes) to {} as '{}' over {}", a.file, *size, device, r.name, pname);

  ProgressBar bar(!c.quiet);
  bool started = false;
  auto result = run_interruptible(adapters::async_push(*protocol, r, [&](std::uint64_t done, std::uint64_t total) {
    if (!started) {
      started = true;
      bar.start(r.name, done);
    }
    bar.update(done, total);
  }));
  bar.clear();
  const double seconds = seconds_since(t0);
  if (!result) return report_error(c, result.error());
  if (c.json) {
    std::cout << dump_json(adapter_json(r.name, device, *protocol, r.payload, *result, seconds)) << std::endl;
  } else if (!c.quiet) {
    std::cout << adapter_line(r.name, device, *protocol, *result, seconds) << std::endl;
  }
  return kExitOk;
}

}  // namespace

int run_push(const PushArgs& a) {
  if (a.protocol != "otter") return run_adapter_push(a);
  const auto t0 = Clock::now();
  const CommonArgs& c = a.common;
  if (c.key_file.empty()) {
    return report_error(c,
                        Error(ErrorCode::invalid_argument, "--key-file is required (the device's pre-shared key)"));
  }
  if (!a.password_file.empty() || a.verify || a.force || !a.callback.empty() || a.kind == "filesystem") {
    return report_error(c, Error(ErrorCode::invalid_argument,
                                 "--password-file, --verify, --force, --callback and --kind filesystem are for "
                                 "stock devices (--protocol arduino-ota, webrepl or legacy)"));
  }
  auto conn = prepare(c);
  if (!conn) return report_error(c, conn.error());
  auto size = check_local_file(a.file);
  if (!size) return report_error(c, size.error());

  PushOptions o;
  o.host = conn->target.host;
  o.port = conn->target.port;
  o.key = std::move(conn->key);
  o.name = a.name_given ? a.name : std::filesystem::path(a.file).filename().string();
  o.kind = a.kind == "firmware" ? core::Kind::firmware : core::Kind::file;  // empty = file
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
  } else if (o.skip_unchanged) {
    // Comparing with the device's copy needs the SHA-256 before connecting.
    bar.start("hashing " + o.name, 0);
    auto d = sha256_file(a.file, [&](std::uint64_t done, std::uint64_t total) { bar.update(done, total); });
    bar.clear();
    if (!d) return report_error(c, d.error());
    o.sha256 = *d;
  }
  // Otherwise the SHA-256 is computed while the file is sent (DIGEST_LAST), or right after the device's HELLO if it
  // does not offer that (protocol.md 3.10): the file is read once.
  spdlog::debug("push {} ({} B, sha256 {}) as '{}' to {}", a.file, *size,
                o.sha256 ? to_hex(*o.sha256) : std::string("computed while sending"), o.name,
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
