// otter-rawcopy — the baseline for the loopback benchmark: the least work any correct transfer must do.
// A sender thread reads FILE and writes it to a loopback TCP socket; a receiver thread reads the socket, hashes
// every byte with SHA-256, writes it to OUT and fsyncs it. Prints seconds, bytes and the SHA-256 as JSON.
// --port P makes the receiver listen on 127.0.0.1:P, --connect Q the sender connect to 127.0.0.1:Q instead of the
// receiver: with a link emulator on Q forwarding to P (scripts/bench), the copy crosses the emulated link.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "otter/ports/openssl_crypto.hpp"

namespace {

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

void send_file(const std::string& path, std::uint16_t port, std::size_t block) {
  const int in = ::open(path.c_str(), O_RDONLY);
  if (in < 0) die("open input");
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("connect");
  std::vector<char> buf(block);
  for (;;) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0) die("read");
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = ::send(s, buf.data() + off, static_cast<std::size_t>(n - off), 0);
      if (w < 0) die("send");
      off += w;
    }
  }
  ::close(s);
  ::close(in);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"otter-rawcopy: raw loopback copy + SHA-256 + fsync (benchmark baseline)"};
  std::string file;
  std::string out;
  std::size_t block = 256 * 1024;
  app.add_option("file", file, "file to send")->required()->check(CLI::ExistingFile);
  app.add_option("out", out, "where the receiver writes")->required();
  app.add_option("--block", block, "read/write block size");
  std::uint16_t listen_port = 0;
  std::uint16_t connect_port = 0;
  app.add_option("--port", listen_port, "receiver's port on 127.0.0.1 (default: ephemeral)");
  app.add_option("--connect", connect_port, "port on 127.0.0.1 the sender connects to (default: the receiver's)");
  CLI11_PARSE(app, argc, argv);

  const int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(listen_port);
  const int one = 1;
  ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(ls, 1) != 0) die("listen");
  socklen_t len = sizeof addr;
  ::getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::uint16_t port = connect_port != 0 ? connect_port : ntohs(addr.sin_port);

  const auto t0 = std::chrono::steady_clock::now();
  std::thread sender([&] { send_file(file, port, block); });
  const int c = ::accept(ls, nullptr, nullptr);
  if (c < 0) die("accept");
  const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (o < 0) die("open output");
  otter::ports::OpenSslSha256 sha;
  std::vector<std::uint8_t> buf(block);
  std::uint64_t total = 0;
  for (;;) {
    const ssize_t n = ::recv(c, buf.data(), buf.size(), 0);
    if (n < 0) die("recv");
    if (n == 0) break;
    sha.update(buf.data(), static_cast<std::size_t>(n));
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = ::write(o, buf.data() + off, static_cast<std::size_t>(n - off));
      if (w < 0) die("write");
      off += w;
    }
    total += static_cast<std::uint64_t>(n);
  }
  if (::fsync(o) != 0) die("fsync");
  ::close(o);
  ::close(c);
  sender.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::uint8_t digest[32];
  sha.finish(digest);
  std::string hex;
  for (auto b : digest) hex += fmt::format("{:02x}", b);
  fmt::print("{{\"seconds\":{:.6f},\"bytes\":{},\"sha256\":\"{}\"}}\n", secs, total, hex);
  return 0;
}
