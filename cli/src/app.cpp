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
#include "server_commands.hpp"

#ifndef OTTER_VERSION
#define OTTER_VERSION "0.0.0"
#endif

namespace otter::cli {
namespace {

constexpr const char* kTargetHelp =
    "device address; the port defaults to the protocol's (otter 12345, arduino-ota 3232, webrepl 8266, legacy 12345; "
    "[v6addr]:PORT for IPv6)";

void add_common(CLI::App& cmd, CommonArgs& c, bool key_required) {
  cmd.add_option("--to", c.target, kTargetHelp)->required()->type_name("HOST[:PORT]");
  auto* key = cmd.add_option("--key-file", c.key_file,
                             "file holding the device's pre-shared key on one line (>= 16 bytes; the otter protocol)")
                  ->type_name("FILE");
  if (key_required) key->required();
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
  add_common(*push_cmd, push.common, /*key_required=*/false);  // checked below: only the otter protocol needs it
  push_cmd
      ->add_option("--protocol", push.protocol,
                   "the device's protocol: otter, or a stock device without otter firmware: arduino-ota "
                   "(ArduinoOTA), webrepl (MicroPython WebREPL), legacy (the original receiver)")
      ->check(CLI::IsMember({"otter", "arduino-ota", "webrepl", "legacy"}))
      ->capture_default_str();
  push_cmd
      ->add_option("--password-file", push.password_file,
                   "arduino-ota / webrepl: file holding the device's password on one line")
      ->type_name("FILE");
  push_cmd->add_flag("--verify", push.verify, "webrepl: read the file back afterwards and compare (no checksum)");
  push_cmd->add_flag("--force", push.force,
                     "legacy: send even when name + newline + content exceed the receiver's single 1024-byte read; "
                     "arduino-ota: send a firmware image that does not start with 0xE9 (encrypted for "
                     "Update.setupCrypt)");
  push_cmd
      ->add_option("--callback", push.callback,
                   "arduino-ota: the address (and port) the device connects back to (default: this host's "
                   "address towards the device, an ephemeral port)")
      ->type_name("HOST[:PORT]");
  CLI::Option* as = push_cmd->add_option("--as", push.name, "target name on the device (default: FILE's basename)")
                        ->type_name("NAME");
  push_cmd
      ->add_option("--kind", push.kind,
                   "artifact kind: file or firmware; arduino-ota: firmware (the default there) or filesystem (an "
                   "image of the data partition)")
      ->check(CLI::IsMember({"file", "firmware", "filesystem"}))
      ->type_name("KIND");
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
  add_common(*stat_cmd, stat.common, /*key_required=*/true);

  // --- the commands that talk to otter-server (`otter --server URL ...`) ---
  ServerArgs srv;
  app.add_option("--server", srv.url,
                 "otter-server URL for the server commands (default $OTTER_SERVER, else "
                 "http://127.0.0.1:8080)")
      ->type_name("URL");
  app.add_option("--token-file", srv.token_file, "file holding the server's API token (default: $OTTER_TOKEN)")
      ->type_name("FILE");
  app.add_flag("--json", srv.json, "server commands: print exactly one JSON object on stdout");
  app.add_flag("-q,--quiet", srv.quiet, "server commands: no progress bar and no result lines");
  app.add_option("--http-timeout", srv.timeout, "server commands: give up on an HTTP request after this long")
      ->type_name("SECONDS")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str();
  // The global flags may also come after the command ("otter devices --json").
  const auto server_command = [&](CLI::App* parent, const char* name, const char* help) {
    CLI::App* c = parent->add_subcommand(name, help);
    c->fallthrough();
    return c;
  };

  DeviceArgs dev;
  CLI::App* devices_cmd = server_command(&app, "devices", "list and manage the server's devices (default: list)");
  devices_cmd->require_subcommand(0, 1);
  CLI::App* dev_list = server_command(devices_cmd, "list", "list devices");
  dev_list->add_option("--tag", dev.tag, "only devices with this tag");
  devices_cmd->add_option("--tag", dev.tag, "only devices with this tag");
  CLI::App* dev_show = server_command(devices_cmd, "show", "show one device");
  CLI::App* dev_add = server_command(devices_cmd, "add", "register a device");
  CLI::App* dev_set = server_command(devices_cmd, "set", "change a device's address, key, protocol or tags");
  CLI::App* dev_rm = server_command(devices_cmd, "rm", "remove a device");
  CLI::App* dev_probe = server_command(devices_cmd, "probe", "connect to a device now: online, id, free space");
  for (CLI::App* c : {dev_show, dev_add, dev_set, dev_rm, dev_probe})
    c->add_option("NAME", dev.name, "device name")->required();
  for (CLI::App* c : {dev_add, dev_set}) {
    CLI::Option* addr = c->add_option_function<std::string>(
        "--address", [&](const std::string& v) { dev.address = v; }, "device address HOST:PORT");
    if (c == dev_add) addr->required();
    CLI::Option* key = c->add_option_function<std::string>(
        "--key-file", [&](const std::string& v) { dev.key_file = v; },
        "file holding the device's secret, sent once and never shown back: the pre-shared key (otter), the "
        "password (webrepl; arduino-ota if it has one); not needed for legacy");
    (void)key;  // required for otter and webrepl devices: the server says so
    c->add_option_function<std::string>(
         "--protocol", [&](const std::string& v) { dev.protocol = v; },
         "otter (default), arduino-ota, webrepl, legacy")
        ->check(CLI::IsMember({"otter", "arduino-ota", "webrepl", "legacy"}));
    c->add_option_function<std::vector<std::string>>(
        "--tag", [&](const std::vector<std::string>& v) { dev.tags = v; },
        "tag (repeatable; replaces the device's tags)");
  }

  ArtifactArgs art;
  CLI::App* artifacts_cmd =
      server_command(&app, "artifacts", "list and manage artifacts on the server (default: list)");
  artifacts_cmd->require_subcommand(0, 1);
  CLI::App* art_list = server_command(artifacts_cmd, "list", "list artifacts: name, size, SHA-256");
  CLI::App* art_upload = server_command(artifacts_cmd, "upload", "upload a local file into the artifact root");
  art_upload->add_option("FILE", art.file, "local file")->required();
  art_upload->add_option("--as", art.name, "name in the artifact root (default: FILE's basename)")->type_name("NAME");
  CLI::App* art_rm = server_command(artifacts_cmd, "rm", "delete an artifact");
  art_rm->add_option("NAME", art.name, "artifact name")->required();

  DeployArgs dep;
  CLI::App* deploy_cmd =
      server_command(&app, "deploy", "push an artifact to devices through the server and follow the job");
  deploy_cmd->add_option("ARTIFACT", dep.artifact, "artifact name (a path inside the server's artifact root)")
      ->required();
  deploy_cmd->add_option("--device,-d", dep.devices, "target device (repeatable)")->type_name("NAME");
  deploy_cmd->add_option("--tag", dep.tag, "every device with this tag");
  deploy_cmd->add_option("--as", dep.as, "name on the device (default: the artifact's basename)")->type_name("NAME");
  deploy_cmd->add_flag("--reboot", dep.reboot, "ask the devices to reboot after the commit");
  deploy_cmd->add_flag("--no-wait", dep.no_wait, "print the job id and return at once");

  JobArgs jobs;
  CLI::App* jobs_cmd = server_command(&app, "jobs", "job history, newest first (default: list)");
  jobs_cmd->require_subcommand(0, 1);
  CLI::App* jobs_list = server_command(jobs_cmd, "list", "list jobs");
  for (CLI::App* c : {jobs_cmd, jobs_list})
    c->add_option("--limit", jobs.limit, "at most this many")->check(CLI::Range(1, 500))->capture_default_str();
  CLI::App* jobs_show = server_command(jobs_cmd, "show", "one job with every device's result");
  CLI::App* jobs_cancel = server_command(jobs_cmd, "cancel", "cancel a job");
  for (CLI::App* c : {jobs_show, jobs_cancel}) c->add_option("ID", jobs.id, "job id")->required();

  WatchArgs watch;
  CLI::App* watch_cmd = server_command(
      &app, "watch", "follow a job to its end (progress bar), or without JOB print every server event live");
  watch_cmd->add_option_function<std::int64_t>(
      "JOB", [&](const std::int64_t& v) { watch.job = v; }, "job id");

  // The top level takes only flags and a few options with values; its first other argument names the command.
  const char* first = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a(argv[i]);
    if (a == "--server" || a == "--token-file" || a == "--http-timeout") {
      ++i;
      continue;
    }
    if (a[0] != '-') {
      first = argv[i];
      break;
    }
  }
  static constexpr std::string_view kCommands[] = {"push", "stat", "devices", "artifacts", "deploy", "jobs", "watch"};
  const bool unknown = first != nullptr && std::find(std::begin(kCommands), std::end(kCommands),
                                                     std::string_view(first)) == std::end(kCommands);

  try {
    if (unknown)
      throw CLI::ExtrasError(fmt::format("unknown command '{}' (expected push, stat, devices, artifacts, deploy, "
                                         "jobs or watch)",
                                         first),
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
                << "       otter [--server URL] devices|artifacts|deploy|jobs|watch ...\n"
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
  if (stat_cmd->parsed()) {
    stat.common.verbose += global_verbose;
    setup_logging(stat.common.verbose);
    return run_stat(stat);
  }
  setup_logging(global_verbose);
  if (devices_cmd->parsed()) {
    for (auto [cmd, action] : {std::pair{dev_show, "show"}, std::pair{dev_add, "add"}, std::pair{dev_set, "set"},
                               std::pair{dev_rm, "rm"}, std::pair{dev_probe, "probe"}, std::pair{dev_list, "list"}}) {
      if (cmd->parsed()) dev.action = action;
    }
    return run_devices(srv, dev);
  }
  if (artifacts_cmd->parsed()) {
    if (art_upload->parsed()) art.action = "upload";
    if (art_rm->parsed()) art.action = "rm";
    (void)art_list;
    return run_artifacts(srv, art);
  }
  if (deploy_cmd->parsed()) return run_deploy(srv, dep);
  if (jobs_cmd->parsed()) {
    if (jobs_show->parsed()) jobs.action = "show";
    if (jobs_cancel->parsed()) jobs.action = "cancel";
    return run_jobs(srv, jobs);
  }
  return run_watch(srv, watch);
}

}  // namespace otter::cli
