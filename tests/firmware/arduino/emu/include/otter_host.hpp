// otter test emulation — the host side of an emulated Arduino device: the command line of the host programs
// (build/bin/basicota-host, confirmafterselftest-host) and what the sketches read through their OTTER_KEY /
// OTTER_PORT macros.
//
//   PROGRAM --port P --data DIR --key-file FILE [--fs-size BYTES] [--auto-confirm SECONDS]
//
// main() (host_main.cpp) does what arduino-esp32's startup does: power-on (otter_emu::power_on(DIR): the emulated
// bootloader picks the slot and prints "emu-boot: ..."), then `if (!verifyRollbackLater())` mark the running image
// valid, then setup(), then loop() forever. After setup() it prints one line on stdout:
//   "PROGRAM: device ID listening on 127.0.0.1:PORT root DIR"
// ESP.restart() re-executes the program with the same arguments (and the port actually bound, so that `--port 0`
// comes back on the same port).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace otter_host {

/// The secret read from --key-file (first line, without the line end).
const char* key();
/// --port (0 = ephemeral).
std::uint16_t port();
/// --auto-confirm if given, else `otherwise` (BasicOTA's OTTER_AUTO_CONFIRM_S on the host).
std::uint32_t auto_confirm_s(std::uint32_t otherwise);
/// --data.
const std::filesystem::path& data_dir();
/// The port the last WiFiServer::begin() bound (0 if none).
std::uint16_t bound_port();

namespace detail {
void set_options(std::uint16_t port, const std::filesystem::path& data, const std::string& key);
void set_auto_confirm(std::uint32_t seconds);
void set_data_dir(const std::filesystem::path& dir);
void set_bound_port(std::uint16_t port);
void set_fs_capacity(std::uint64_t bytes);
/// Waits up to `max_ms` for network activity on any emulated socket (the idle part of the emulated loop task).
void idle_wait(int max_ms);
}  // namespace detail

}  // namespace otter_host
