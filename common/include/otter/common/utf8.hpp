// otter — UTF-8 validation as a strict decoder (Python's, MicroPython's) sees it: the legacy adapter refuses what the
// original receiver could not decode, and its simulator fails the same way.
#pragma once

#include <cstddef>
#include <string_view>

namespace otter {

/// Offset of the first byte that does not start a valid UTF-8 sequence (truncated, overlong, a surrogate, past
/// U+10FFFF), or std::string_view::npos if all of `s` is valid UTF-8.
std::size_t invalid_utf8_at(std::string_view s) noexcept;

}  // namespace otter
