#include "app.hpp"

#include <algorithm>
#include <iostream>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "format.hpp"
#include "otter/core/codec.hpp"

#ifndef OTTER_VERSION
#define OTTER_VERSION "0.0.0"
#endif

namespace otter::cli {
namespace {

constexpr const char* kTargetHelp = "device address; the port defaults to 12345 ([v6addr]:PORT for IPv6)";

void add_common(CLI::App& cmd, CommonArgs& c) {
  cmd.add_option("--to", c.target, kTargetHelp)->required()->type_name("HOST[:PORT]");
  cmd.add_option("--key-file", c.key_file, "file holding the device's pre-shared key on one line (>= 16 bytes)")
      ->required()
      ->type_name("FILE");
  cmd.add_flag("--json", c.json, "print exactly one JSON object on stdout, whatever happens");
  cmd.add_flag("-q,--quiet", c.quiet, "no progress bar and no result line (errors are still printed)");
  cmd.add_flag("-v,--verbose", c.verbose, "debug logging on stderr (-vv: trace)");
  cmd.add_option("--timeout", c.timeout, "give up when the device is silent this long")
      ->type_name("SECONDS")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str();
  cmd.add_option("--connect-timeout", c.connect_timeout, "give up connecting after this long")
      ->type_name("SECONDS")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str();
}

void setup_logging(int verbose) {
  auto logger = spdlog::stderr_color_st("otter");
  logger->set_pattern("otter: [%l] %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(verbose >= 2 ? spdlog::level::trace : verbose == 1 ? spdlog::level::debug : spdlog::level::warn);
}

}  // namespace

int run(int argc, char** argv) {
  // --json promises one JSON object on stdout even when the arguments cannot be parsed.
  const bool json = std::any_of(argv + 1, argv + argc, [](const char* a) { return std::string_view(a) == "--json"; });

  CLI::App app{"otter: push files and firmware to devices over the otter protocol", "otter"};
  app.set_version_flag("--version", fmt::format("otter {} (protocol v{})", OTTER_VERSION, core::kProtocolVersion));
  app.require_subcommand(1);
  int global_verbose = 0;
  app.add_flag("-v,--verbose", global_verbose, "debug logging on stderr (-vv: trace)");

  PushArgs push;
  CLI::App* push_cmd =
      app.add_subcommand("push", "push a file to a device; succeeds once the device has committed it");
  push_cmd->add_option("FILE", push.file, "local file to push")->required();
  add_common(*push_cmd, push.common);
  CLI::Option* as = push_cmd->add_option("--as", push.name, "target name on the device (default: FILE's basename)")
                        ->type_name("NAME");
  push_cmd->add_option("--kind", push.kind, "artifact kind")
      ->check(CLI::IsMember({"file", "firmware"}))
      ->capture_default_str();
  push_cmd->add_flag("--reboot", push.reboot, "ask the device to reboot after the commit");
  push_cmd->add_option("--sha256", push.sha256, "use this SHA-256 (64 hex digits) instead of hashing FILE")
      ->type_name("HEX");
  push_cmd->add_option("--chunk-size", push.chunk_size, "DATA frame payload size")
      ->type_name("BYTES")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  push_cmd->add_flag("--skip-unchanged", push.skip_unchanged,
                     "ask the device first and send nothing if it already holds this content");

  StatArgs stat;
  CLI::App* stat_cmd = app.add_subcommand("stat", "show a file on a device: size and SHA-256");
  stat_cmd->add_option("NAME", stat.name, "name on the device")->required();
  add_common(*stat_cmd, stat.common);

  // The top level takes only flags, so its first other argument names the command.
  const auto first = std::find_if(argv + 1, argv + argc, [](const char* a) { return a[0] != '-'; });
  const bool unknown =
      first != argv + argc && std::string_view(*first) != "push" && std::string_view(*first) != "stat";

  try {
    if (unknown)
      throw CLI::ExtrasError(fmt::format("unknown command '{}' (expected 'push' or 'stat')", *first),
                             CLI::ExitCodes::ExtrasError);
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    const Error err(ErrorCode::invalid_argument, e.what());
    if (json) {
      std::cout << dump_json(error_json(err)) << std::endl;
    } else {
      std::cerr << "error: " << e.what() << "\n"
                << "usage: otter push FILE --to HOST[:PORT] --key-file FILE [options]\n"
                << "       otter stat NAME --to HOST[:PORT] --key-file FILE [options]\n"
                << "run 'otter --help' or 'otter push --help' for details" << std::endl;
    }
    return kExitUsage;
  }

  if (push_cmd->parsed()) {
    push.name_given = as->count() > 0;
    push.common.verbose += global_verbose;
    setup_logging(push.common.verbose);
    return run_push(push);
  }
  stat.common.verbose += global_verbose;
  setup_logging(stat.common.verbose);
  return run_stat(stat);
}

}  // namespace otter::cli
