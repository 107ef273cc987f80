// otter-agent --mode legacy: the original design's MicroPython receiver, on the wire and in its failures.
//
// The original program (../shared/seed): listen(1) on port 12345; for each connection: recv(1024) ONCE, decode it
// as UTF-8, split at the first '\n' into path and content, take the path's last '/' segment as the file name, write
// the content to that file (text, created or truncated), print "File NAME has been written.", close. It answers
// nothing. Whatever raises — bytes that are not UTF-8, no newline, a name that cannot be opened — ends the program
// with a traceback (the device then serves nobody until it is reset): the simulator prints the Python exception and
// exits with status 1. What it reproduces on purpose: content over 1024 - len(name) - 1 bytes is cut without a word.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include "listen.hpp"
#include "otter/common/unique_fd.hpp"
#include "otter/common/utf8.hpp"
#include "simulators.hpp"

namespace otter::agent::sim {
namespace {

/// The traceback the MicroPython program would print, then the program is over.
int crash(const std::string& exception) {
  std::fprintf(stderr, "Traceback (most recent call last):\n  File \"main.py\", in <module>\n%s\n",
               exception.c_str());
  std::fflush(stderr);
  spdlog::error("the receiver program stopped (as the original does on this input); the device needs a reset");
  return 1;
}

}  // namespace

int run_legacy(const Options& opts) {
  if (!make_root(opts)) return 1;
  auto listener = listen_socket(opts, SOCK_STREAM, 1);  // the original: s.listen(1)
  if (!listener) return start_failed(listener.error());
  const UniqueFd& ls = listener->fd;
  // SIGINT / SIGTERM end the loop (the original has no such thing: it runs until reset).
  const UniqueFd sfd = stop_signals();
  if (sfd.get() < 0) return 1;
  announce(opts, listener->shown);
  spdlog::info("Waiting for a connection... (the original receiver: one recv(1024) per connection, no answer)");

  for (;;) {
    pollfd p[2] = {{ls.get(), POLLIN, 0}, {sfd.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (p[1].revents != 0) {
      spdlog::info("signal received, shutting down");
      return 0;
    }
    sockaddr_storage peer{};
    socklen_t plen = sizeof peer;
    const UniqueFd conn(::accept4(ls.get(), reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC));
    if (conn.get() < 0) continue;
    const auto [host, pport] = host_port(peer);
    spdlog::info("Connected by ('{}', {})", host, pport);

    // conn.recv(1024): blocks until some bytes (or EOF) arrive; returns at most 1024 of them.
    char buf[1024];
    ssize_t n = -1;
    do {
      n = ::recv(conn.get(), buf, sizeof buf, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return crash(fmt::format("OSError: [Errno {}] {}", errno, std::strerror(errno)));
    const std::string_view received(buf, static_cast<std::size_t>(n));
    if (invalid_utf8_at(received) != std::string_view::npos) return crash("UnicodeError: ");
    const auto nl = received.find('\n');
    if (nl == std::string_view::npos) return crash("ValueError: need more than 1 values to unpack");
    const std::string_view path = received.substr(0, nl);
    const std::string_view content = received.substr(nl + 1);
    const auto slash = path.rfind('/');
    const std::string file_name(slash == std::string_view::npos ? path : path.substr(slash + 1));
    // open(file_name, 'w') in the device's current directory (the root of its file system).
    const std::string target = opts.root + "/" + file_name;
    const UniqueFd out(file_name.empty() || file_name == "." || file_name == ".."
                           ? -1
                           : ::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (out.get() < 0)
      return crash(fmt::format("OSError: [Errno {}] {}", file_name.empty() ? ENOENT : EISDIR,
                               file_name.empty() ? "ENOENT" : "EISDIR"));
    std::size_t off = 0;
    while (off < content.size()) {
      const ssize_t w = ::write(out.get(), content.data() + off, content.size() - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return crash(fmt::format("OSError: [Errno {}] {}", errno, std::strerror(errno)));
      off += static_cast<std::size_t>(w);
    }
    spdlog::info("File {} has been written.", file_name);
  }
}

}  // namespace otter::agent::sim
