// tests/adapters — what the adapter tests share: the simulators' command line, `otter push --protocol P --json` run
// for real, an adapter run in-process (adapters::async_push on a private io_context), and firmware images as the
// devices want them.
#pragma once

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli_test_util.hpp"
#include "otter/common/adapters_asio.hpp"
#include "otter/test/bin.hpp"
#include "otter/test/files.hpp"

namespace otter::test {

/// `otter-agent --mode MODE --listen 127.0.0.1:0 --root ROOT --name NAME` + `extra`.
inline std::vector<std::string> simulator_argv(const std::string& mode, const std::filesystem::path& root,
                                               const std::string& name, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv{agent_bin(), "--mode",      mode,     "--listen", "127.0.0.1:0",
                                "--root",    root.string(), "--name", name};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

/// An ESP32 application image as far as ArduinoOTA's Update checks it: `n` pseudo-random bytes (n >= 1) whose first
/// byte is ESP_IMAGE_HEADER_MAGIC (0xE9).
inline void write_firmware_image(const std::filesystem::path& path, std::size_t n, std::uint64_t seed) {
  std::string content = random_bytes(n, seed);
  content.at(0) = static_cast<char>(0xE9);
  write_file(path, content);
}

/// One `otter push --protocol P --json …` run.
struct CliResult {
  std::optional<int> exit;
  nlohmann::json out;  ///< the --json document (null if none)
  std::string log;     ///< argv, output and exit status, for assertion messages
};

inline CliResult push_cli(const std::string& protocol, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"push", "--protocol", protocol, "--json"};
  argv.insert(argv.end(), args.begin(), args.end());
  const OtterRun run = run_otter(argv);
  CliResult r;
  if (run.exit_code >= 0) r.exit = run.exit_code;
  r.log = run.describe;
  const auto brace = run.out.find('{');
  if (brace != std::string::npos) r.out = nlohmann::json::parse(run.out.substr(brace), nullptr, false);
  return r;
}

/// The --json error's code (-1 if there is none) and message.
inline int error_code_of(const CliResult& r) {
  if (!r.out.is_object() || !r.out.contains("error")) return -1;
  return r.out["error"]["code"].get<int>();
}
inline std::string error_message_of(const CliResult& r) {
  if (!r.out.is_object() || !r.out.contains("error")) return {};
  return r.out["error"]["message"].get<std::string>();
}

/// Runs adapters::async_push on a private io_context (at most 120 s). `cancel`, if set, is bound as the awaiting
/// coroutine's cancellation slot; `running`, if set, points at the io_context while it runs (to post to it).
inline Result<adapters::Outcome> push_in_process(adapters::Protocol protocol, adapters::Request request,
                                                 adapters::Progress progress = {},
                                                 boost::asio::cancellation_signal* cancel = nullptr,
                                                 boost::asio::io_context** running = nullptr) {
  namespace asio = boost::asio;
  asio::io_context io;
  if (running != nullptr) *running = &io;
  std::optional<Result<adapters::Outcome>> result;
  auto done = [&](std::exception_ptr e, Result<adapters::Outcome> r) {
    result = e ? Result<adapters::Outcome>(make_error(ErrorCode::internal, "exception")) : std::move(r);
  };
  auto op = adapters::async_push(protocol, std::move(request), std::move(progress));
  if (cancel != nullptr) {
    asio::co_spawn(io, std::move(op), asio::bind_cancellation_slot(cancel->slot(), done));
  } else {
    asio::co_spawn(io, std::move(op), done);
  }
  io.run_for(std::chrono::seconds(120));
  if (running != nullptr) *running = nullptr;
  if (!result) return make_error(ErrorCode::internal, "no result");
  return std::move(*result);
}

}  // namespace otter::test
