// otter-agent — entry point. Exit codes: 0 clean shutdown (SIGINT/SIGTERM), 1 runtime failure (cannot listen,
// cannot create the root), 2 usage or configuration error (bad arguments, bad key file).
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "otter/agent/agent.hpp"
#include "otter/agent/options.hpp"
#include "otter/common/keyfile.hpp"
#include "sim/simulators.hpp"

namespace {

int run(int argc, char** argv) {
  auto parsed = otter::agent::parse_command_line(argc, argv);
  if (!parsed.options) return parsed.exit_code;
  otter::agent::Options opts = std::move(*parsed.options);

  // Logs go to stderr; stdout carries only the "listening" lines that scripts and tests parse.
  auto logger = spdlog::stderr_color_mt("otter-agent");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  spdlog::set_level(opts.quiet ? spdlog::level::warn : spdlog::level::from_str(opts.log_level));

  std::error_code ec;
  auto root = std::filesystem::absolute(opts.root, ec).lexically_normal().string();
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  opts.root = root;
  std::signal(SIGPIPE, SIG_IGN);

  if (opts.mode != "otter") {
    std::string password;
    if (!opts.password_file.empty()) {
      auto p = otter::read_password_file(opts.password_file);
      if (!p) {
        std::fprintf(stderr, "otter-agent: %s\n", p.error().message.c_str());
        return 2;
      }
      password = std::move(*p);
    }
    if (opts.mode == "legacy") return otter::agent::sim::run_legacy(opts);
    if (opts.mode == "webrepl") return otter::agent::sim::run_webrepl(opts, password);
    return otter::agent::sim::run_arduino_ota(opts, password);
  }

  auto key = otter::read_key_file(opts.key_file);
  if (!key) {
    std::fprintf(stderr, "otter-agent: %s\n", key.error().message.c_str());
    return 2;
  }

  const auto fd_limit = otter::agent::raise_fd_limit();
  const std::size_t devices = opts.devices == 0 ? 1 : opts.devices;
  const std::uint64_t fd_need = devices * (opts.max_sessions + 2) + 64;
  if (fd_limit != 0 && fd_limit < fd_need) {
    spdlog::warn("open-file limit {} is below the {} that {} device(s) x {} session(s) may need", fd_limit, fd_need,
                 devices, opts.max_sessions);
  }

  otter::agent::Agent agent(opts, std::move(*key));
  auto endpoints = agent.start();
  if (!endpoints) {
    std::fprintf(stderr, "otter-agent: %s\n", endpoints.error().message.c_str());
    return endpoints.error().code == otter::ErrorCode::invalid_argument ? 2 : 1;
  }
  for (const auto& e : *endpoints) {
    fmt::print("otter-agent: device {} listening on {} root {}\n", e.id, e.address, e.root);
  }
  std::fflush(stdout);
  spdlog::info("{} device(s) ready: window {} bytes, max size {}, idle timeout {} ms{}", endpoints->size(),
               opts.window, opts.max_size == 0 ? std::string("free space") : std::to_string(opts.max_size),
               opts.idle_timeout_ms, opts.rate != 0 ? fmt::format(", rate {} B/s", opts.rate) : std::string());
  agent.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "otter-agent: fatal: %s\n", e.what());
    return 1;
  }
}
