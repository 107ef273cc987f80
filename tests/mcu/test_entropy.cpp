// otter — TEST-ONLY entropy for the emulated microcontroller (qemu mps2-an385), which has no hardware RNG.
//
// NOT A SOURCE OF ENTROPY. mbedTLS (configured with MBEDTLS_ENTROPY_HARDWARE_ALT, see otter_mcu_mbedtls_config.h)
// takes its seed from mbedtls_hardware_poll(); on a device that function reads the hardware RNG (ESP32:
// esp_fill_random(), as ESP-IDF's own port does; STM32: the RNG peripheral). Here it is a SplitMix64 sequence from a
// fixed start: every poll returns new bytes (so two MbedTlsCrypto objects, or two nonces, differ, as the tests
// require) and every run of a test image draws the same sequence (reproducible failures). Nonces made from it are
// predictable, so this file is linked only into the images of tests/mcu and must never be part of a device build.
#include <mbedtls/entropy_poll.h>

#include <cstddef>
#include <cstdint>

namespace {

std::uint64_t g_state = 0x6f747465722d6d63;  // "otter-mc"

std::uint64_t splitmix64() {
  std::uint64_t z = (g_state += 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

}  // namespace

extern "C" int mbedtls_hardware_poll(void* /*data*/, unsigned char* output, std::size_t len, std::size_t* olen) {
  for (std::size_t i = 0; i < len; i += 8) {
    std::uint64_t r = splitmix64();
    for (std::size_t k = i; k < len && k < i + 8; ++k, r >>= 8) output[k] = static_cast<unsigned char>(r);
  }
  *olen = len;
  return 0;
}
