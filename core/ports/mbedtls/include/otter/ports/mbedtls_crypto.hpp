// otter — CryptoPort backed by mbedTLS (2.28 and 3.x): the device crypto port (ESP-IDF, Arduino), also built and
// tested on hosts against libmbedtls-dev. Contexts live inside the object; the only allocation is the HMAC
// context's setup, once, in the constructor.
#pragma once

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/md.h>
#include <mbedtls/sha256.h>

#include "otter/core/ports.hpp"

namespace otter::ports {

class MbedTlsSha256 final : public core::Sha256 {
 public:
  MbedTlsSha256();
  ~MbedTlsSha256();
  MbedTlsSha256(const MbedTlsSha256&) = delete;
  MbedTlsSha256& operator=(const MbedTlsSha256&) = delete;
  void reset() override;
  void update(const std::uint8_t* data, std::size_t n) override;
  void finish(std::uint8_t out[core::kHashSize]) override;
  void peek(std::uint8_t out[core::kHashSize]) override;

 private:
  mbedtls_sha256_context ctx_;
};

/// HMAC-SHA256 on mbedtls_md. The context is set up once (mbedtls_md_setup allocates its pads in the constructor,
/// never per message). For ports that take their random bytes elsewhere (the ESP-IDF component: esp_fill_random).
class MbedTlsHmacSha256 {
 public:
  MbedTlsHmacSha256();
  ~MbedTlsHmacSha256();
  MbedTlsHmacSha256(const MbedTlsHmacSha256&) = delete;
  MbedTlsHmacSha256& operator=(const MbedTlsHmacSha256&) = delete;
  /// CryptoPort::hmac_sha256's contract: false if mbedTLS failed (the output is then unusable).
  [[nodiscard]] bool compute(core::ByteView key, const core::ByteView* parts, std::size_t n,
                             std::uint8_t out[core::kHashSize]);

 private:
  mbedtls_md_context_t ctx_;
  bool ready_ = false;
};

/// Random bytes come from mbedTLS's CTR_DRBG seeded by its entropy collector (the platform's entropy source:
/// /dev/urandom on hosts, the hardware RNG on ESP32).
class MbedTlsCrypto final : public core::CryptoPort {
 public:
  MbedTlsCrypto();
  ~MbedTlsCrypto();
  MbedTlsCrypto(const MbedTlsCrypto&) = delete;
  MbedTlsCrypto& operator=(const MbedTlsCrypto&) = delete;
  core::Sha256& sha256() override { return sha_; }
  bool hmac_sha256(core::ByteView key, const core::ByteView* parts, std::size_t n,
                   std::uint8_t out[core::kHashSize]) override {
    return hmac_.compute(key, parts, n, out);
  }
  bool random(std::uint8_t* out, std::size_t n) override;

 private:
  MbedTlsSha256 sha_;
  MbedTlsHmacSha256 hmac_;
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
  bool seeded_ = false;
};

}  // namespace otter::ports
