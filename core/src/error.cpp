#include "otter/core/error.hpp"

namespace otter {

const char* error_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::ok:
      return "OK";
    case ErrorCode::bad_name:
      return "BAD_NAME";
    case ErrorCode::too_large:
      return "TOO_LARGE";
    case ErrorCode::no_space:
      return "NO_SPACE";
    case ErrorCode::auth_failed:
      return "AUTH_FAILED";
    case ErrorCode::hash_mismatch:
      return "HASH_MISMATCH";
    case ErrorCode::storage:
      return "STORAGE";
    case ErrorCode::busy:
      return "BUSY";
    case ErrorCode::protocol:
      return "PROTOCOL";
    case ErrorCode::timeout:
      return "TIMEOUT";
    case ErrorCode::unsupported_version:
      return "UNSUPPORTED_VERSION";
    case ErrorCode::unsupported_kind:
      return "UNSUPPORTED_KIND";
    case ErrorCode::internal:
      return "INTERNAL";
    case ErrorCode::connect_failed:
      return "CONNECT_FAILED";
    case ErrorCode::connection_closed:
      return "CONNECTION_CLOSED";
    case ErrorCode::device_auth:
      return "DEVICE_AUTH";
    case ErrorCode::io:
      return "IO";
    case ErrorCode::invalid_argument:
      return "INVALID_ARGUMENT";
    case ErrorCode::not_otter_device:
      return "NOT_OTTER_DEVICE";
    case ErrorCode::config:
      return "CONFIG";
    case ErrorCode::not_found:
      return "NOT_FOUND";
    case ErrorCode::canceled:
      return "CANCELED";
    case ErrorCode::conflict:
      return "CONFLICT";
    case ErrorCode::forbidden:
      return "FORBIDDEN";
    case ErrorCode::unauthorized:
      return "UNAUTHORIZED";
    case ErrorCode::payload_too_large:
      return "PAYLOAD_TOO_LARGE";
    case ErrorCode::resume_mismatch:
      return "RESUME_MISMATCH";
  }
  return "UNKNOWN";
}

const char* error_description(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::ok:
      return "success";
    case ErrorCode::bad_name:
      return "name is not a valid relative path";
    case ErrorCode::too_large:
      return "artifact is larger than the device accepts";
    case ErrorCode::no_space:
      return "not enough free space on the device";
    case ErrorCode::auth_failed:
      return "authentication failed (wrong key, tampered or replayed request)";
    case ErrorCode::hash_mismatch:
      return "content does not match its SHA-256";
    case ErrorCode::storage:
      return "device storage error";
    case ErrorCode::busy:
      return "device is busy with the same name or has no free session";
    case ErrorCode::protocol:
      return "protocol violation";
    case ErrorCode::timeout:
      return "peer was silent for too long";
    case ErrorCode::unsupported_version:
      return "unsupported protocol version";
    case ErrorCode::unsupported_kind:
      return "device does not accept this kind of artifact";
    case ErrorCode::internal:
      return "internal error";
    case ErrorCode::connect_failed:
      return "could not connect to the device";
    case ErrorCode::connection_closed:
      return "connection closed before the operation ended";
    case ErrorCode::device_auth:
      return "device failed to prove knowledge of the key";
    case ErrorCode::io:
      return "local I/O error";
    case ErrorCode::invalid_argument:
      return "invalid argument";
    case ErrorCode::not_otter_device:
      return "peer is not an otter device";
    case ErrorCode::config:
      return "configuration error";
    case ErrorCode::not_found:
      return "not found";
    case ErrorCode::canceled:
      return "canceled";
    case ErrorCode::conflict:
      return "conflict with the current state";
    case ErrorCode::forbidden:
      return "forbidden";
    case ErrorCode::unauthorized:
      return "missing or wrong API token";
    case ErrorCode::payload_too_large:
      return "request body too large";
    case ErrorCode::resume_mismatch:
      return "the device's partial copy is of other content";
  }
  return "unknown error";
}

}  // namespace otter
