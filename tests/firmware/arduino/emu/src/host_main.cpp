// The host programs' main(): what arduino-esp32's startup does around a sketch (see otter_host.hpp).
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

#include "Arduino.h"
#include "OtterOTA.h"
#include "esp_ota_ops.h"
#include "otter_emu/chip.hpp"
#include "otter_host.hpp"

void setup();
void loop();

// arduino-esp32 declares this hook weak in esp32-hal-misc.c (C linkage); OtterOTA overrides it.
extern "C" bool verifyRollbackLater() __attribute__((weak));
extern "C" bool verifyRollbackLater() { return false; }

namespace {

[[noreturn]] void usage(const char* prog, const std::string& why) {
  std::fprintf(stderr, "%s: %s\nusage: %s --port P --data DIR --key-file FILE [--fs-size BYTES] [--auto-confirm S]\n",
               prog, why.c_str(), prog);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string prog = argv[0];
  if (const auto slash = prog.rfind('/'); slash != std::string::npos) prog.erase(0, slash + 1);

  std::uint16_t port = 0;
  std::filesystem::path data;
  std::string key;
  std::string key_file;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(prog.c_str(), "missing value after " + a);
    const std::string v = argv[++i];
    if (a == "--port") {
      char* end = nullptr;
      const unsigned long p = std::strtoul(v.c_str(), &end, 10);
      if (*end != '\0' || p > 65535) usage(prog.c_str(), "bad --port " + v);
      port = static_cast<std::uint16_t>(p);
    } else if (a == "--data") {
      data = v;
    } else if (a == "--key-file") {
      key_file = v;
    } else if (a == "--auto-confirm") {
      otter_host::detail::set_auto_confirm(static_cast<std::uint32_t>(std::strtoul(v.c_str(), nullptr, 10)));
    } else if (a == "--fs-size") {
      otter_host::detail::set_fs_capacity(std::strtoull(v.c_str(), nullptr, 10));
    } else {
      usage(prog.c_str(), "unknown option " + a);
    }
  }
  if (data.empty() || key_file.empty()) usage(prog.c_str(), "--data and --key-file are required");
  {
    std::ifstream in(key_file);
    if (!in || !std::getline(in, key)) usage(prog.c_str(), "cannot read the key file " + key_file);
    while (!key.empty() && (key.back() == '\r' || key.back() == '\n')) key.pop_back();
  }
  std::error_code ec;
  std::filesystem::create_directories(data, ec);
  otter_host::detail::set_options(port, data, key);

  // Power-on: the bootloader picks the slot (and rolls back an unconfirmed image).
  try {
    otter_emu::power_on(data);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", prog.c_str(), e.what());
    return 1;
  }
  otter_emu::restart_by_reexec(argc, argv);

  // initArduino(): without the sketch's say-so, a new image is accepted as soon as it runs.
  if (!verifyRollbackLater()) {
    const esp_partition_t* running = esp_ota_get_running_partition();
    esp_ota_img_states_t state;
    if (running != nullptr && esp_ota_get_state_partition(running, &state) == ESP_OK &&
        state == ESP_OTA_IMG_PENDING_VERIFY) {
      esp_ota_mark_app_valid_cancel_rollback();
    }
  }

  setup();

  const std::uint16_t bound = otter_host::bound_port();
  if (bound == 0) {
    std::fprintf(stderr, "%s: the sketch did not start a server\n", prog.c_str());
    return 1;
  }
  std::printf("%s: device %s listening on 127.0.0.1:%u root %s\n", prog.c_str(), OtterOTA.deviceId(),
              static_cast<unsigned>(bound), data.c_str());
  if (port == 0) {
    // An emulated restart comes back on the port it got now.
    std::vector<std::string> args(argv, argv + argc);
    for (std::size_t i = 1; i + 1 < args.size(); ++i)
      if (args[i] == "--port") args[i + 1] = std::to_string(bound);
    std::vector<char*> cargs;
    for (auto& s : args) cargs.push_back(s.data());
    otter_emu::restart_by_reexec(static_cast<int>(args.size()), cargs.data());
  }

  for (;;) {
    loop();
    otter_host::detail::idle_wait(5);
  }
}
