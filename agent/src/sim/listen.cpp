// The simulators' shared start-up (see listen.hpp).
#include "listen.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

namespace otter::agent::sim {

Result<ListenSocket> listen_socket(const Options& opts, int type, int backlog) {
  const bool v6 = opts.listen_host.find(':') != std::string::npos;
  sockaddr_storage addr{};
  socklen_t len = 0;
  int parsed = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(opts.listen_port);
    parsed = ::inet_pton(AF_INET6, opts.listen_host.c_str(), &a->sin6_addr);
    len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(opts.listen_port);
    parsed = ::inet_pton(AF_INET, opts.listen_host.c_str(), &a->sin_addr);
    len = sizeof(sockaddr_in);
  }
  if (parsed != 1) {
    return make_error(ErrorCode::invalid_argument,
                      fmt::format("--listen: '{}' is not an IP address", opts.listen_host));
  }
  ListenSocket out{UniqueFd(::socket(v6 ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC, 0)), {}};
  const int one = 1;
  const bool stream = type == SOCK_STREAM;
  if (out.fd.get() < 0 || (stream && ::setsockopt(out.fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) ||
      ::bind(out.fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      (stream && ::listen(out.fd.get(), backlog) != 0) ||
      ::getsockname(out.fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return make_error(ErrorCode::io, fmt::format("cannot listen on {}{}:{}: {}", stream ? "" : "UDP ",
                                                 opts.listen_host, opts.listen_port, std::strerror(errno)));
  }
  const std::uint16_t port =
      ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  out.shown = v6 ? fmt::format("[{}]:{}", opts.listen_host, port) : fmt::format("{}:{}", opts.listen_host, port);
  return out;
}

bool make_root(const Options& opts) {
  std::error_code ec;
  std::filesystem::create_directories(opts.root, ec);
  if (std::filesystem::is_directory(opts.root)) return true;
  std::fprintf(stderr, "otter-agent: cannot create root %s: %s\n", opts.root.c_str(),
               ec ? ec.message().c_str() : "not a directory");
  return false;
}

UniqueFd stop_signals() {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &sigs, nullptr);
  UniqueFd fd(::signalfd(-1, &sigs, SFD_CLOEXEC));
  if (fd.get() < 0) std::fprintf(stderr, "otter-agent: signalfd: %s\n", std::strerror(errno));
  return fd;
}

std::pair<std::string, std::uint16_t> host_port(const sockaddr_storage& address) {
  char host[INET6_ADDRSTRLEN] = "?";
  std::uint16_t port = 0;
  if (address.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&address);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (address.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&address);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return {host, port};
}

std::string address_text(const sockaddr_storage& address) {
  const auto [host, port] = host_port(address);
  return address.ss_family == AF_INET6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

int start_failed(const Error& error) {
  std::fprintf(stderr, "otter-agent: %s\n", error.message.c_str());
  return error.code == ErrorCode::invalid_argument ? 2 : 1;
}

void announce(const Options& opts, const std::string& shown) {
  fmt::print("otter-agent: device {} listening on {} root {}\n", opts.name, shown, opts.root);
  std::fflush(stdout);
}

}  // namespace otter::agent::sim
