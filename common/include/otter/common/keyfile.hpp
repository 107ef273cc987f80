// otter — the pre-shared key file: the secret on one line; whitespace around it (including the final newline, CRLF,
// indentation) is ignored. Whitespace inside the secret is part of it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "otter/common/error.hpp"

namespace otter {

/// The protocol's minimum key length (docs/protocol.md: "at least 16 bytes").
constexpr std::size_t kMinKeySize = 16;
/// A key file larger than this is refused (it is certainly not a key file).
constexpr std::size_t kMaxKeyFileSize = std::size_t{64} * 1024;

/// Extracts the secret from a key file's content. CONFIG if it is empty, spans several lines, or is shorter than
/// `min_size` bytes. `origin` (the file name) is used in messages; the secret itself never is.
Result<std::string> parse_key(std::string_view content, std::string_view origin, std::size_t min_size = kMinKeySize);

/// Reads and parses a key file. NOT_FOUND if it does not exist; CONFIG if it cannot be read, is not a regular file,
/// is too large, or parse_key refuses its content.
Result<std::string> read_key_file(const std::string& path, std::size_t min_size = kMinKeySize);

/// A password file of a stock device (ArduinoOTA, WebREPL): read_key_file's rules without the 16-byte minimum.
inline Result<std::string> read_password_file(const std::string& path) { return read_key_file(path, 1); }

}  // namespace otter
