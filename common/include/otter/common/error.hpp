// otter — the host-side result type: expected<T, Error>, where Error = numbered code (shared with the core and the
// wire, see otter/core/error.hpp and docs/errors.md) + a message with context.
#pragma once

#include <string>
#include <utility>

#include <tl/expected.hpp>

#include "otter/core/error.hpp"

namespace otter {

struct Error {
  ErrorCode code = ErrorCode::internal;
  std::string message;

  Error() = default;
  Error(ErrorCode c, std::string m) : code(c), message(std::move(m)) {}
  explicit Error(const core::Error& e) : code(e.code), message(e.message) {}

  /// "CONNECT_FAILED (100): connect to 10.0.0.5:12345: Connection refused"
  [[nodiscard]] std::string to_string() const;
  /// Adds context in front of the message: "reading key file: " + message.
  [[nodiscard]] Error with_context(const std::string& context) const { return {code, context + ": " + message}; }
};

template <class T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> make_error(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace otter
