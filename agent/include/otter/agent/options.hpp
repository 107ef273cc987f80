// otter-agent — command-line options of the device agent (a Linux board, or N simulated devices in one process).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "otter/common/error.hpp"

namespace otter::agent {

struct Options {
  std::string listen_host = "0.0.0.0";  ///< --listen ADDR:PORT (IPv6 as [addr]:port)
  std::uint16_t listen_port = 12345;
  std::string root;                        ///< --root DIR (made absolute by main)
  std::string key_file;                    ///< --key-file FILE
  std::string name;                        ///< --name ID (default: the host name)
  std::uint64_t max_size = 0;              ///< --max-size BYTES, 0 = limited by free space only
  std::uint64_t rate = 0;                  ///< --rate BYTES_PER_S per connection, 0 = unlimited
  std::size_t devices = 0;                 ///< --devices N; 0 = one device at ROOT named ID (no --devices given)
  std::optional<std::uint16_t> port_base;  ///< --port-base P (with --devices; default: the --listen port)
  std::uint32_t idle_timeout_ms = 30000;   ///< --idle-timeout SECONDS
  std::uint32_t window = 8 * 1024 * 1024;  ///< --window BYTES
  std::size_t max_sessions = 8;            ///< --max-sessions N, concurrent connections per device
  std::string log_level = "info";          ///< --log-level
  bool quiet = false;                      ///< --quiet: warnings and errors only
  std::string on_reboot;                   ///< --on-reboot CMD, run via /bin/sh after DONE
  bool firmware = true;                    ///< advertise caps::firmware (stored like a file)
  /// --threads N: event-loop threads the devices are spread over (0 = automatic: 1 for one device, else
  /// min(devices, 8)). A commit waits for fsync; with many simulated devices other threads keep serving meanwhile.
  std::size_t threads = 0;
  /// --mode: "otter" (the otter device), or a faithful simulator of a stock device for the adapters (issue 7):
  /// "arduino-ota" (ArduinoOTA of arduino-esp32), "webrepl" (MicroPython WebREPL), "legacy" (the original receiver).
  std::string mode = "otter";
  std::string password_file;  ///< --password-file: the simulated device's password (arduino-ota, webrepl)
  /// --ota-auth (arduino-ota): "sha256" = the PBKDF2-SHA256 scheme of arduino-esp32 >= 3.3.1 (64-char nonce), "md5"
  /// = the MD5 scheme of <= 3.3.0 (32-char nonce), "sha256-md5hash" = >= 3.3.1 given an MD5 hash (setPasswordHash).
  std::string ota_auth = "sha256";
};

/// One simulated device's identity and place, derived from Options.
struct DeviceSpec {
  std::string id;
  std::string root;
  std::uint16_t port = 0;  ///< 0 = ephemeral
};

/// "4096", "64K", "1M", "2G", "1T" (KiB multiples; suffix case-insensitive, optional trailing "B" or "iB").
/// INVALID_ARGUMENT for anything else or on overflow.
Result<std::uint64_t> parse_size(std::string_view text);

/// "ADDR:PORT", "[v6]:PORT". INVALID_ARGUMENT otherwise.
Result<std::pair<std::string, std::uint16_t>> parse_endpoint(std::string_view text);

/// Device ids must be 1..64 printable ASCII bytes (protocol HELLO).
Result<void> validate_device_id(std::string_view id);

/// The devices Options describes: one at ROOT named NAME, or with --devices N: NAME-0001.. at ROOT/dev-0001..,
/// ports P..P+N-1 (all 0 if P is 0). INVALID_ARGUMENT if the ports overflow or an id is invalid.
Result<std::vector<DeviceSpec>> device_specs(const Options& options);

/// Result of parsing argv: options, or an exit code (0 after --help/--version, 2 on a usage error; the message has
/// been printed).
struct ParseResult {
  std::optional<Options> options;
  int exit_code = 0;
};
ParseResult parse_command_line(int argc, const char* const* argv);

}  // namespace otter::agent
