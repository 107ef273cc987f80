// otter — byte views and big-endian helpers for the portable core (no heap, no OS headers).
#pragma once

#include <cstddef>
#include <cstdint>

namespace otter::core {

/// A non-owning view of bytes (the core is C++17: no std::span).
struct ByteView {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;

  constexpr ByteView() = default;
  constexpr ByteView(const std::uint8_t* d, std::size_t n) : data(d), size(n) {}
  ByteView(const char* d, std::size_t n) : data(reinterpret_cast<const std::uint8_t*>(d)), size(n) {}
  [[nodiscard]] constexpr bool empty() const { return size == 0; }
};

inline void put_u16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
inline void put_u32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) {
    p[i] = static_cast<std::uint8_t>(v);
    v >>= 8;
  }
}
inline void put_u64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<std::uint8_t>(v);
    v >>= 8;
  }
}
inline std::uint16_t get_u16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }
inline std::uint32_t get_u32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | p[i];
  return v;
}
inline std::uint64_t get_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

/// Constant-time comparison (for MACs).
inline bool equal_ct(const std::uint8_t* a, const std::uint8_t* b, std::size_t n) {
  std::uint8_t d = 0;
  for (std::size_t i = 0; i < n; ++i) d = static_cast<std::uint8_t>(d | (a[i] ^ b[i]));
  return d == 0;
}

}  // namespace otter::core
