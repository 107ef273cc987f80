#include "otter/test/agent.hpp"

#include <sys/stat.h>

#include <csignal>
#include <stdexcept>

#include "otter/test/files.hpp"

namespace otter::test {

std::string AgentEndpoint::address() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<AgentEndpoint> parse_listening_line(std::string_view line) {
  // "PROGRAM: device ID listening on ADDR root DIR": otter-agent's line, also printed by the firmware host builds
  // (basicota-host, otter-idf-example-host). PROGRAM is one word.
  constexpr std::string_view kDevice = ": device ";
  constexpr std::string_view kListening = " listening on ";
  constexpr std::string_view kRoot = " root ";
  const auto prog = line.find(kDevice);
  if (prog == std::string_view::npos || prog == 0 || line.substr(0, prog).find(' ') != std::string_view::npos)
    return std::nullopt;
  line.remove_prefix(prog + kDevice.size());
  const auto l = line.find(kListening);
  if (l == std::string_view::npos) return std::nullopt;
  AgentEndpoint ep;
  ep.id = std::string(line.substr(0, l));
  line.remove_prefix(l + kListening.size());
  const auto r = line.find(kRoot);
  if (r == std::string_view::npos) return std::nullopt;
  const std::string_view addr = line.substr(0, r);
  ep.root = std::string(line.substr(r + kRoot.size()));
  const auto colon = addr.rfind(':');
  if (colon == std::string_view::npos || colon + 1 >= addr.size()) return std::nullopt;
  std::string_view host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  ep.host = std::string(host);
  unsigned long port = 0;
  for (char c : addr.substr(colon + 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<unsigned long>(c - '0');
    if (port > 65535) return std::nullopt;
  }
  ep.port = static_cast<std::uint16_t>(port);
  return ep;
}

std::string write_key_file(const std::filesystem::path& path, std::string_view key) {
  write_file(path, std::string(key) + "\n");
  ::chmod(path.c_str(), 0600);
  return path.string();
}

AgentProcess::AgentProcess(std::vector<std::string> argv, std::size_t devices, std::chrono::milliseconds timeout,
                           Process::Options options)
    : proc_(std::make_unique<Process>(std::move(argv), std::move(options))) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (devices_.size() < devices) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto line = proc_->read_line_until([](const std::string& l) { return parse_listening_line(l).has_value(); },
                                       std::max(left, std::chrono::milliseconds(0)));
    if (!line) {
      proc_->wait(std::chrono::milliseconds(200));
      throw std::runtime_error("otter-agent did not announce " + std::to_string(devices) + " device(s) (got " +
                               std::to_string(devices_.size()) + ")\n" + proc_->output());
    }
    devices_.push_back(*parse_listening_line(*line));
  }
}

std::optional<int> AgentProcess::stop(std::chrono::milliseconds timeout) {
  proc_->signal(SIGTERM);
  auto rc = proc_->wait(timeout);
  if (!rc) proc_->kill();
  return rc;
}

}  // namespace otter::test
