// otter fuzzing — reads typed values from the fuzzer's bytes (zeros once they run out).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace otter::fuzz {

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  [[nodiscard]] bool empty() const { return pos_ >= size_; }
  [[nodiscard]] std::size_t remaining() const { return size_ - pos_; }
  std::uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint16_t u16() { return static_cast<std::uint16_t>((u8() << 8) | u8()); }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | u8();
    return v;
  }
  /// Up to n bytes (fewer at the end of the input).
  std::vector<std::uint8_t> bytes(std::size_t n) {
    const std::size_t k = n < remaining() ? n : remaining();
    std::vector<std::uint8_t> out(data_ + pos_, data_ + pos_ + k);
    pos_ += k;
    return out;
  }
  std::string str(std::size_t n) {
    auto b = bytes(n);
    return std::string(b.begin(), b.end());
  }
  /// Everything left.
  std::vector<std::uint8_t> rest() { return bytes(remaining()); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace otter::fuzz
