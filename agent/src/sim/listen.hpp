// The simulators' shared start-up: the --root directory, the listening socket on --listen, SIGINT / SIGTERM as a
// file descriptor, and the "listening" line the tests and scripts wait for.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <utility>

#include "otter/agent/options.hpp"
#include "otter/common/error.hpp"
#include "otter/common/unique_fd.hpp"

namespace otter::agent::sim {

struct ListenSocket {
  UniqueFd fd;
  std::string shown;  ///< "HOST:PORT" or "[HOST]:PORT" with the port actually bound
};

/// A socket of `type` (SOCK_STREAM: also listen(backlog); SOCK_DGRAM) bound to --listen (SO_REUSEADDR).
/// INVALID_ARGUMENT when the host is not an IP address, IO when it cannot be bound.
Result<ListenSocket> listen_socket(const Options& opts, int type, int backlog = 1);

/// Creates --root if missing. False (after printing why) if it is not a directory then.
bool make_root(const Options& opts);

/// SIGINT and SIGTERM blocked and delivered through the returned signalfd (-1 after printing why).
UniqueFd stop_signals();

/// The address and port of a socket address ("?" and 0 for a family other than IPv4 / IPv6).
std::pair<std::string, std::uint16_t> host_port(const sockaddr_storage& address);
/// "HOST:PORT", "[HOST]:PORT" for IPv6.
std::string address_text(const sockaddr_storage& address);

/// Prints the reason for a failed start-up on stderr; the exit code (2: bad --listen, 1 otherwise).
int start_failed(const Error& error);

/// Prints "otter-agent: device ID listening on ADDR root DIR" on stdout and flushes it.
void announce(const Options& opts, const std::string& shown);

}  // namespace otter::agent::sim
