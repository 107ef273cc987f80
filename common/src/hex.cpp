#include "otter/common/hex.hpp"

#include <fmt/format.h>

namespace otter {
namespace {

constexpr char kDigits[] = "0123456789abcdef";

int nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes text (even length, checked by the callers) into out (text.size() / 2 bytes).
Result<void> decode(std::string_view text, std::uint8_t* out) {
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const int hi = nibble(text[i]);
    const int lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) {
      const std::size_t bad = hi < 0 ? i : i + 1;
      const auto ch = static_cast<unsigned char>(text[bad]);
      return make_error(ErrorCode::invalid_argument,
                        ch >= 0x20 && ch < 0x7F ? fmt::format("invalid hex digit '{}' at position {}", text[bad], bad)
                                                : fmt::format("invalid hex digit 0x{:02x} at position {}", ch, bad));
    }
    out[i / 2] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  return {};
}

}  // namespace

std::string to_hex(std::span<const std::uint8_t> bytes) {
  std::string s(bytes.size() * 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    s[2 * i] = kDigits[bytes[i] >> 4];
    s[2 * i + 1] = kDigits[bytes[i] & 0x0F];
  }
  return s;
}

Result<std::vector<std::uint8_t>> from_hex(std::string_view text) {
  if (text.size() % 2 != 0) {
    return make_error(ErrorCode::invalid_argument, fmt::format("odd number of hex digits ({})", text.size()));
  }
  std::vector<std::uint8_t> out(text.size() / 2);
  if (auto r = decode(text, out.data()); !r) return tl::unexpected(r.error());
  return out;
}

Result<void> from_hex(std::string_view text, std::span<std::uint8_t> out) {
  if (text.size() != out.size() * 2) {
    return make_error(ErrorCode::invalid_argument,
                      fmt::format("expected {} hex digits, got {}", out.size() * 2, text.size()));
  }
  return decode(text, out.data());
}

}  // namespace otter
