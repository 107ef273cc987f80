// linkem — a link emulator: a TCP proxy that behaves like a slow, distant, unreliable radio link between a pusher
// (the client) and a device (the target).
//
// Model, per direction: every chunk read from the source at time t is serialised on the link at `rate`
// (departure = max(t, link_free) + len / rate) and delivered at departure + delay (+ jitter, drawn from a seeded
// PRNG and clamped so that bytes are never reordered). A FIN is delivered after the last byte (half-close). The
// bottleneck buffer holds at most `queue` bytes waiting for the link; when it is full linkem stops reading from the
// source (TCP backpressure). Faults count bytes in one direction (`fault_direction`) on the first
// `fault_connections` connections:
//   - cut: nothing after the cut offset is forwarded; once the bytes before it are delivered, both sides are reset
//     (SO_LINGER 0: an RST, like a radio drop);
//   - stall: after `stall_after` bytes the link delivers nothing (either way) for `stall_for`;
//   - slow: after `slow_after` bytes the link's rate becomes `slow_rate` (both directions).
// Deterministic: the random cut offset and the jitter are pure functions of (seed, connection index).
//
//   boost::asio::io_context io;
//   otter::linkem::Linkem link(io, options);          // binds; throws std::system_error if it cannot
//   link.on_event([](const std::string& line) { ... });  // "linkem: conn 1 closed up=... down=... cut=yes at=..."
//   link.start();
//   io.run();
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "otter/common/error.hpp"

namespace boost::asio {
class io_context;
}

namespace otter::linkem {

enum class Direction { up, down };  ///< up = client -> target (the pusher's data), down = target -> client

struct Options {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 0;  ///< 0 = ephemeral
  std::string to_host = "127.0.0.1";
  std::uint16_t to_port = 0;
  double rate = 0;                            ///< bytes per second each way; 0 = unlimited
  std::chrono::microseconds delay{0};         ///< one-way
  std::chrono::microseconds jitter{0};        ///< each chunk's delay is delay +- uniform(jitter)
  std::uint64_t queue = 128ULL * 1024;        ///< bottleneck buffer, bytes waiting for the link
  std::optional<std::uint64_t> cut_after;     ///< cut once this many bytes went through
  bool cut_random = false;                    ///< cut at a random offset in [1, cut_within]
  std::uint64_t cut_within = 1024ULL * 1024;  ///< range of --cut-random
  std::uint32_t fault_connections = 1;        ///< connections 1..N get the faults; 0 = every connection
  Direction fault_direction = Direction::up;  ///< which direction's bytes the fault offsets count
  std::optional<std::uint64_t> stall_after;   ///< stall once this many bytes went through
  std::chrono::microseconds stall_for{0};     ///< how long the stall lasts
  std::optional<std::uint64_t> slow_after;    ///< drop the rate once this many bytes went through
  double slow_rate = 0;                       ///< bytes per second after slow_after
  std::uint64_t seed = 1;
};

/// "8mbit", "100kbit", "1gbit", "64kB", "2MB", "500B" -> bytes per second (k/M/G are powers of 1000; B and kB/MB are
/// bytes). A bare number is bits per second (like tc). Errors name the text.
Result<double> parse_rate(std::string_view text);
/// "20ms", "500us", "5s", "1.5s" -> microseconds. A bare number is milliseconds.
Result<std::chrono::microseconds> parse_duration(std::string_view text);
/// "262144", "256K", "256KiB", "1M", "1MiB" -> bytes (K/M/G = 1024^n).
Result<std::uint64_t> parse_bytes(std::string_view text);
/// "127.0.0.1:12345", "[::1]:80" -> host (without brackets) and port.
Result<std::pair<std::string, std::uint16_t>> parse_endpoint(std::string_view text);
/// Checks option combinations (cut_after with cut_random, stall_after without stall_for, ...).
Result<void> validate(const Options& options);

/// The cut offset connection `index` (1-based) gets, or nullopt if it gets no cut.
std::optional<std::uint64_t> planned_cut(const Options& options, std::uint64_t index);

class Linkem {
 public:
  /// Binds and listens on options.listen_host:listen_port. Throws std::system_error on failure.
  Linkem(boost::asio::io_context& io, Options options);
  ~Linkem();
  Linkem(const Linkem&) = delete;
  Linkem& operator=(const Linkem&) = delete;

  /// The bound port (the real one when listen_port was 0).
  [[nodiscard]] std::uint16_t port() const;
  /// Receives one line per event ("linkem: conn N open ...", "linkem: conn N closed ..."); default: none.
  void on_event(std::function<void(const std::string&)> sink);
  /// Starts accepting (co_spawned on the io_context).
  void start();
  /// Stops accepting and resets every open connection.
  void stop();

  struct Impl;  ///< implementation detail (src/linkem.cpp)

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace otter::linkem
