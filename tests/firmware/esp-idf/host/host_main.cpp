// otter-idf-example-host — the ESP-IDF example's app_main (firmware/esp-idf/otter/examples/basic/main/main.c) on
// Linux against the host emulations (tests/firmware/emu/esp: flash, OTA, bootloader; tests/firmware/esp-idf/emu:
// FreeRTOS, lwIP sockets, NVS, LittleFS, log, timer, RNG).
//
//   otter-idf-example-host --port P --data DIR --key-file FILE [--log-level error|warn|info|debug]
//                          [--auto-confirm S]   (otter_ota_config_t.auto_confirm_s; CONFIG_OTTER_AUTO_CONFIRM_S on a
//                          chip)
//
// DIR/flash: the emulated flash (two OTA slots + otadata); DIR/fs: the LittleFS partition (the example's base path);
// DIR/nvs: NVS, where the key file's secret is provisioned (namespace "otter", key "key") before app_main runs, as a
// factory would write it. stdout: the bootloader's "emu-boot: ..." line, then
//   "otter-idf-example-host: device ID listening on 127.0.0.1:PORT root DIR/fs"
// (otter-agent's shape, so tests parse it with otter::test::parse_listening_line). Logs go to stderr. esp_restart()
// re-executes the program with the same arguments and the port actually bound (--port 0 comes back on the same
// port). Exit codes: 2 usage or key file error, 1 the emulated chip cannot boot.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "esp_log.h"
#include "nvs_flash.h"
#include "otter_emu/chip.hpp"
#include "otter_host.h"
#include "otter_idf_emu/host.hpp"

extern "C" void app_main(void);

namespace {

struct Host {
  std::vector<std::string> argv;
  std::size_t port_arg = 0;  // index of --port's value in argv
  std::uint16_t port = 0;
  std::filesystem::path data;
  std::string fs_path;
  long auto_confirm_s = -1;  // -1: the Kconfig default
  otter_ota_event_cb_t app_cb = nullptr;
  void* app_ctx = nullptr;
};

Host g_host;

void usage() {
  std::fprintf(
      stderr,
      "usage: otter-idf-example-host --port P --data DIR --key-file FILE [--log-level LEVEL] [--auto-confirm S]\n");
}

void on_event(const otter_ota_event_t* e, void* ctx) {
  if (e->id == OTTER_OTA_EVENT_LISTENING) {
    std::printf("otter-idf-example-host: device %s listening on 127.0.0.1:%u root %s\n", e->device_id,
                static_cast<unsigned>(e->port), g_host.fs_path.c_str());
    std::fflush(stdout);
    // A reboot must bring the device back where the pusher knows it: re-execute with the bound port.
    g_host.argv[g_host.port_arg] = std::to_string(e->port);
    std::vector<char*> args;
    for (auto& a : g_host.argv) args.push_back(a.data());
    otter_emu::restart_by_reexec(static_cast<int>(args.size()), args.data());
  }
  if (g_host.app_cb != nullptr) g_host.app_cb(e, ctx);
}

std::string read_key(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  const auto first = s.find_first_not_of(" \t\r\n\v\f");
  if (first == std::string::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n\v\f");
  return s.substr(first, last - first + 1);
}

int run(int argc, char** argv) {
  g_host.argv.assign(argv, argv + argc);
  std::string port_text;
  std::string data;
  std::string key_file;
  esp_log_level_t level = ESP_LOG_INFO;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      usage();
      return 2;
    }
    if (a == "--port") {
      port_text = argv[++i];
      g_host.port_arg = static_cast<std::size_t>(i);
    } else if (a == "--data") {
      data = argv[++i];
    } else if (a == "--key-file") {
      key_file = argv[++i];
    } else if (a == "--auto-confirm") {
      g_host.auto_confirm_s = std::strtol(argv[++i], nullptr, 10);
    } else if (a == "--log-level") {
      const std::string l = argv[++i];
      level = l == "error" ? ESP_LOG_ERROR : l == "warn" ? ESP_LOG_WARN : l == "debug" ? ESP_LOG_DEBUG : ESP_LOG_INFO;
    } else {
      usage();
      return 2;
    }
  }
  if (port_text.empty() || data.empty() || key_file.empty()) {
    usage();
    return 2;
  }
  char* end = nullptr;
  const unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
  if (end == port_text.c_str() || *end != '\0' || port > 65535) {
    std::fprintf(stderr, "otter-idf-example-host: --port: '%s' is not a port\n", port_text.c_str());
    return 2;
  }
  g_host.port = static_cast<std::uint16_t>(port);
  const std::string key = read_key(key_file);
  if (key.size() < 16) {
    std::fprintf(stderr, "otter-idf-example-host: key file %s: missing, empty or shorter than 16 bytes\n",
                 key_file.c_str());
    return 2;
  }

  std::error_code ec;
  g_host.data = std::filesystem::absolute(data, ec).lexically_normal();
  std::filesystem::create_directories(g_host.data, ec);
  g_host.fs_path = (g_host.data / "fs").string();
  std::signal(SIGPIPE, SIG_IGN);
  esp_log_level_set("*", level);

  otter_emu::power_on(g_host.data);  // the bootloader: prints "emu-boot: ..."
  otter_emu::restart_by_reexec(argc, argv);
  otter_idf_emu::set_data_dir(g_host.data);

  // Factory provisioning: the device key into NVS (namespace "otter", key "key"), where the component reads it.
  nvs_handle_t nvs = 0;
  if (nvs_flash_init() != ESP_OK || nvs_open("otter", NVS_READWRITE, &nvs) != ESP_OK ||
      nvs_set_str(nvs, "key", key.c_str()) != ESP_OK || nvs_commit(nvs) != ESP_OK) {
    std::fprintf(stderr, "otter-idf-example-host: cannot provision the key into %s/nvs\n", g_host.data.c_str());
    return 1;
  }
  nvs_close(nvs);

  app_main();  // returns once the app has started its tasks (as on the chip, where the main task then ends)
  for (;;) ::pause();
}

}  // namespace

extern "C" void otter_host_apply(otter_ota_config_t* config) {
  config->port = g_host.port;
  config->base_path = g_host.fs_path.c_str();
  if (g_host.auto_confirm_s >= 0) config->auto_confirm_s = static_cast<uint32_t>(g_host.auto_confirm_s);
  g_host.app_cb = config->event_cb;
  g_host.app_ctx = config->event_ctx;
  config->event_cb = on_event;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "otter-idf-example-host: %s\n", e.what());
    return 1;
  }
}
