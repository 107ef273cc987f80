// otter — hexadecimal encoding of byte strings (SHA-256 digests, MACs in logs and JSON).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "otter/common/error.hpp"

namespace otter {

/// Lower-case hex, two characters per byte.
std::string to_hex(std::span<const std::uint8_t> bytes);

/// Decodes hex (upper or lower case, no separators, no "0x" prefix). INVALID_ARGUMENT on an odd length or a
/// character that is not a hex digit (the message names its position).
Result<std::vector<std::uint8_t>> from_hex(std::string_view text);

/// Decodes exactly out.size() bytes: INVALID_ARGUMENT unless text has exactly 2 * out.size() hex digits.
Result<void> from_hex(std::string_view text, std::span<std::uint8_t> out);

}  // namespace otter
