// The fuzz targets' crypto port: OpenSSL's SHA-256 and HMAC with a deterministic "random" source, so that every input
// replays exactly (one instance per input).
#pragma once

#include <cstddef>
#include <cstdint>

#include "otter/core/ports.hpp"
#include "otter/ports/openssl_crypto.hpp"

namespace otter::fuzz {

class FuzzCrypto final : public core::CryptoPort {
 public:
  core::Sha256& sha256() override { return inner_.sha256(); }
  bool hmac_sha256(core::ByteView key, const core::ByteView* parts, std::size_t n,
                   std::uint8_t out[core::kHashSize]) override {
    return inner_.hmac_sha256(key, parts, n, out);
  }
  bool random(std::uint8_t* out, std::size_t n) override {
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(counter_++ * 37 + 11);
    return true;
  }

 private:
  ports::OpenSslCrypto inner_;
  std::uint8_t counter_ = 0;
};

}  // namespace otter::fuzz
