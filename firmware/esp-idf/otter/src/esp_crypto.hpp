// otter ESP-IDF component — the CryptoPort: SHA-256 and HMAC-SHA256 from the core's mbedTLS port (MbedTlsSha256,
// MbedTlsHmacSha256; mbedTLS 2.28 and 3.x), random bytes from the chip's hardware RNG (esp_fill_random: a true RNG
// while Wi-Fi/BT runs, which it does while otter serves).
//
// Why not the port's MbedTlsCrypto: it also holds an entropy collector and a CTR_DRBG (about 1 KiB on an ESP32;
// 38 KiB on Debian's libmbedcrypto, which enables HAVEGE) and seeds them in its constructor, only to produce nonces,
// which the hardware RNG gives directly.
#pragma once

#include <cstddef>
#include <cstdint>

#include "esp_random.h"
#include "otter/core/ports.hpp"
#include "otter/ports/mbedtls_crypto.hpp"

namespace otter::esp {

class EspCrypto final : public core::CryptoPort {
 public:
  EspCrypto() = default;
  EspCrypto(const EspCrypto&) = delete;
  EspCrypto& operator=(const EspCrypto&) = delete;

  core::Sha256& sha256() override { return sha_; }

  bool hmac_sha256(core::ByteView key, const core::ByteView* parts, std::size_t n,
                   std::uint8_t out[core::kHashSize]) override {
    return hmac_.compute(key, parts, n, out);
  }

  bool random(std::uint8_t* out, std::size_t n) override {
    esp_fill_random(out, n);
    return true;
  }

 private:
  ports::MbedTlsSha256 sha_;
  ports::MbedTlsHmacSha256 hmac_;
};

}  // namespace otter::esp
