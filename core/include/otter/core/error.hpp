// otter — error codes shared by the device core, the agent, the CLI and the server.
//
// Codes 1..99 travel on the wire (docs/protocol.md, section 6); codes from 100 up are local to host tools
// (docs/errors.md). The numbers are a contract: never renumber, only add.
#pragma once

#include <cstdint>

#include <tl/expected.hpp>

namespace otter {

enum class ErrorCode : std::uint16_t {
  ok = 0,
  // --- on the wire (protocol v1) ---
  bad_name = 1,              ///< name breaks a rule of protocol.md section 5
  too_large = 2,             ///< size > device max_size
  no_space = 3,              ///< not enough free space on the device
  auth_failed = 4,           ///< request MAC wrong (wrong key, tampering, replay)
  hash_mismatch = 5,         ///< received content does not match the SHA-256
  storage = 6,               ///< device could not write / sync / rename
  busy = 7,                  ///< same name in progress elsewhere, or device full of sessions
  protocol = 8,              ///< malformed or unexpected frame
  timeout = 9,               ///< peer silent longer than the idle timeout
  unsupported_version = 10,  ///< protocol version not spoken
  unsupported_kind = 11,     ///< kind (file / firmware) not accepted by the device
  internal = 12,             ///< anything else on the device
  // --- local to host tools ---
  connect_failed = 100,     ///< could not connect to the device
  connection_closed = 101,  ///< peer closed the connection before the operation ended
  device_auth = 102,        ///< the device failed to prove knowledge of the key (READY/DONE/STAT MAC wrong)
  io = 103,                 ///< local file or socket I/O error
  invalid_argument = 104,   ///< bad command-line argument or API input
  not_otter_device = 105,   ///< peer did not send an otter HELLO (bad magic)
  config = 106,             ///< bad configuration (key file, config file)
  not_found = 107,          ///< local file or resource does not exist
  canceled = 108,           ///< operation canceled by the user
  conflict = 109,           ///< resource already exists / state does not allow the operation
  forbidden = 110,          ///< path outside the artifact root, origin not allowed
  unauthorized = 111,       ///< API token missing or wrong
  payload_too_large = 112,  ///< request body or upload over the configured limit
  resume_mismatch = 113,    ///< the device's partial copy is not a prefix of the content (push again with RESTART)
};

/// Stable identifier, e.g. "BAD_NAME" (used in JSON output and logs).
const char* error_name(ErrorCode code) noexcept;
/// One-line default description, e.g. "name is not a valid relative path".
const char* error_description(ErrorCode code) noexcept;
/// True for codes 1..99 (those that may appear in an ERROR frame).
constexpr bool is_wire_error(ErrorCode code) noexcept {
  return static_cast<std::uint16_t>(code) >= 1 && static_cast<std::uint16_t>(code) <= 99;
}

namespace core {

/// The device core's error: a code and a static message (no heap in the core).
struct Error {
  ErrorCode code = ErrorCode::internal;
  const char* message = "";
};

template <class T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(ErrorCode code, const char* message) noexcept {
  return tl::unexpected<Error>(Error{code, message});
}

}  // namespace core
}  // namespace otter
