// linkem: a link emulator (rate, one-way delay, jitter, cuts, stalls, slow-downs) as a TCP proxy. See linkem.hpp.
#include <csignal>
#include <cstdio>
#include <exception>
#include <string>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "otter/linkem/linkem.hpp"

namespace {

int fail(const std::string& message) {
  fmt::print(stderr, "linkem: {}\n", message);
  return 2;
}

void print_line(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  using namespace otter::linkem;
  CLI::App app{
      "linkem: a link emulator. A TCP proxy that serialises each direction at --rate, delivers after --delay (one "
      "way, so 20ms gives a 40 ms round trip) +- --jitter, and injects faults (cut, stall, slow-down) on the first "
      "--cut-connections connections, counting bytes in --direction. Prints 'linkem: listening on ADDR -> TO', then "
      "per connection 'linkem: conn N open ...' and 'linkem: conn N closed up=BYTES down=BYTES cut=yes|no "
      "[at=BYTES]'."};
  std::string listen = "127.0.0.1:0", to, rate = "0", delay = "0ms", jitter = "0ms", queue = "128K";
  std::string cut_after, cut_within = "1M", stall_after, stall_for, slow_after, slow_rate, direction = "up";
  std::uint64_t seed = 1;
  std::uint32_t cut_connections = 1;
  bool cut_random = false;
  app.add_option("--listen", listen, "ADDR:PORT to listen on (port 0 = ephemeral)")->capture_default_str();
  app.add_option("--to", to, "ADDR:PORT of the target (the device)")->required();
  app.add_option("--rate", rate, "link rate each way: NUMBER with bit|kbit|mbit|gbit|B|kB|MB (0 = unlimited)")
      ->capture_default_str();
  app.add_option("--delay", delay, "one-way delay: NUMBER with us|ms|s")->capture_default_str();
  app.add_option("--jitter", jitter, "each chunk's delay varies by +- up to this (never reorders bytes)")
      ->capture_default_str();
  app.add_option("--queue", queue, "bottleneck buffer, bytes (K/M); linkem stops reading from a source when full")
      ->capture_default_str();
  auto* ca = app.add_option("--cut-after", cut_after, "cut (reset both sides) after this many bytes");
  auto* cr = app.add_flag("--cut-random", cut_random, "cut at a random offset in [1, --cut-within] (from --seed)");
  ca->excludes(cr);
  app.add_option("--cut-within", cut_within, "range of --cut-random, bytes (K/M)")->capture_default_str();
  app.add_option("--cut-connections,--fault-connections", cut_connections,
                 "connections 1..N get the faults (cut, stall, slow); 0 = every connection")
      ->capture_default_str();
  app.add_option("--stall-after", stall_after, "stall the link (both ways) after this many bytes");
  app.add_option("--stall-for", stall_for, "how long the stall lasts (us|ms|s)");
  app.add_option("--slow-after", slow_after, "drop the rate after this many bytes");
  app.add_option("--slow-rate", slow_rate, "the rate after --slow-after");
  app.add_option("--direction", direction,
                 "which direction's bytes the fault offsets count: up (client -> target, "
                 "the pusher's data) or down")
      ->check(CLI::IsMember({"up", "down"}))
      ->capture_default_str();
  app.add_option("--seed", seed, "seed of the random cut offset and the jitter")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    return fail(std::string(e.what()) + " (see --help)");
  }

  Options o;
  auto l = parse_endpoint(listen);
  if (!l) return fail("--listen: " + l.error().message);
  auto t = parse_endpoint(to);
  if (!t) return fail("--to: " + t.error().message);
  std::tie(o.listen_host, o.listen_port) = *l;
  std::tie(o.to_host, o.to_port) = *t;
  auto r = parse_rate(rate);
  if (!r) return fail("--rate: " + r.error().message);
  o.rate = *r;
  auto d = parse_duration(delay);
  if (!d) return fail("--delay: " + d.error().message);
  o.delay = *d;
  auto j = parse_duration(jitter);
  if (!j) return fail("--jitter: " + j.error().message);
  o.jitter = *j;
  auto q = parse_bytes(queue);
  if (!q) return fail("--queue: " + q.error().message);
  o.queue = *q;
  if (!cut_after.empty()) {
    auto c = parse_bytes(cut_after);
    if (!c) return fail("--cut-after: " + c.error().message);
    o.cut_after = *c;
  }
  o.cut_random = cut_random;
  auto w = parse_bytes(cut_within);
  if (!w) return fail("--cut-within: " + w.error().message);
  o.cut_within = *w;
  o.fault_connections = cut_connections;
  if (!stall_after.empty()) {
    auto s = parse_bytes(stall_after);
    if (!s) return fail("--stall-after: " + s.error().message);
    o.stall_after = *s;
  }
  if (!stall_for.empty()) {
    auto s = parse_duration(stall_for);
    if (!s) return fail("--stall-for: " + s.error().message);
    o.stall_for = *s;
  }
  if (!slow_after.empty()) {
    auto s = parse_bytes(slow_after);
    if (!s) return fail("--slow-after: " + s.error().message);
    o.slow_after = *s;
  }
  if (!slow_rate.empty()) {
    auto s = parse_rate(slow_rate);
    if (!s) return fail("--slow-rate: " + s.error().message);
    o.slow_rate = *s;
  }
  o.fault_direction = direction == "down" ? Direction::down : Direction::up;
  o.seed = seed;
  if (auto v = validate(o); !v) return fail(v.error().message);

  try {
    boost::asio::io_context io(1);
    Linkem link(io, o);
    link.on_event(print_line);
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      link.stop();
      io.stop();
    });
    std::signal(SIGPIPE, SIG_IGN);
    link.start();
    print_line(fmt::format("linkem: listening on {}:{} -> {}:{}",
                           o.listen_host.find(':') != std::string::npos ? "[" + o.listen_host + "]" : o.listen_host,
                           link.port(), o.to_host.find(':') != std::string::npos ? "[" + o.to_host + "]" : o.to_host,
                           o.to_port));
    io.run();
  } catch (const std::exception& e) {
    fmt::print(stderr, "linkem: cannot listen on {}: {}\n", listen, e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // e.g. std::bad_alloc while setting up the options
    fmt::print(stderr, "linkem: {}\n", e.what());
    return 1;
  }
}
