// otter — pushing to stock devices that run no otter firmware (issue 7): the adapters.
//
//   arduino-ota  ArduinoOTA of arduino-esp32 (espota's protocol): UDP invitation to port 3232, MD5 or PBKDF2-SHA256
//                challenge, the device connects back over TCP to a port the pusher opens; firmware (cmd 0) or a
//                filesystem image (cmd 100)
//   webrepl      MicroPython WebREPL: WebSocket on port 8266, password login, PUT of one file (optional read-back)
//   legacy       the original design's receiver: "name\ncontent" in one TCP send to port 12345, read by a single
//                recv(1024), no answer
//
// Every adapter has the same shape: a Request in, an Outcome or an Error (docs/errors.md) out, progress callbacks,
// cancellation (adapters_asio.hpp: `otter push --protocol P` and otter-server jobs both run the coroutine form). The
// otter protocol itself is push_client.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "otter/common/error.hpp"
#include "otter/common/push_client.hpp"

namespace otter::adapters {

enum class Protocol : std::uint8_t { otter, arduino_ota, webrepl, legacy };

/// "otter", "arduino-ota", "webrepl", "legacy"; INVALID_ARGUMENT naming the choices otherwise.
Result<Protocol> parse_protocol(std::string_view name);
const char* protocol_name(Protocol protocol) noexcept;
/// The stock port: otter 12345, arduino-ota 3232 (UDP), webrepl 8266, legacy 12345.
std::uint16_t default_port(Protocol protocol) noexcept;

/// What is pushed. arduino-ota: firmware = cmd 0 (U_FLASH), filesystem = cmd 100 (a LittleFS/SPIFFS image);
/// webrepl and legacy: file only.
enum class Payload : std::uint8_t { file, firmware, filesystem };

/// "file", "firmware", "filesystem"; INVALID_ARGUMENT otherwise.
Result<Payload> parse_payload(std::string_view name);
const char* payload_name(Payload payload) noexcept;

struct Request {
  std::string host;        ///< device name or address
  std::uint16_t port = 0;  ///< 0 = default_port(protocol)
  std::string path;        ///< local file
  std::string name;  ///< name on the device (webrepl: the file written; legacy: the name line); arduino-ota: unused
  Payload payload = Payload::file;
  std::string password;  ///< arduino-ota (empty: the device has none), webrepl (4..9 characters)
  bool verify = false;   ///< webrepl: read the file back (GET) and compare, as WebREPL has no checksum
  /// legacy: send even what the receiver's single recv(1024) cannot take whole; arduino-ota: send a firmware image
  /// that does not start with 0xE9 (an image encrypted for Update.setupCrypt())
  bool force = false;
  /// arduino-ota: the address the device connects back to. Empty: this host's address on the route to the device.
  std::string callback_host;
  std::uint16_t callback_port = 0;  ///< arduino-ota: the TCP port opened for the device (0 = ephemeral)
  std::chrono::milliseconds connect_timeout = kDefaultConnectTimeout;  ///< resolve + connect / invitation answered
  std::chrono::milliseconds idle_timeout = kDefaultIdleTimeout;        ///< device silent this long -> TIMEOUT
};

struct Outcome {
  std::uint64_t size = 0;        ///< payload bytes
  std::uint64_t bytes_sent = 0;  ///< payload bytes put on the wire
  /// The device reported success (arduino-ota: "OK" after the MD5 check; webrepl: the final status 0). Always false
  /// for legacy, whose receiver answers nothing.
  bool confirmed = false;
  bool verified = false;       ///< webrepl with verify: read back and byte-equal
  std::string device_message;  ///< the device's last words, if any (e.g. "OK")
};

/// (bytes the device is known to have, or sent when it acknowledges nothing; total).
using Progress = std::function<void(std::uint64_t done, std::uint64_t total)>;

}  // namespace otter::adapters
