// otter — CryptoPort backed by OpenSSL (hosts: agent, CLI, server).
#pragma once

#include "otter/core/ports.hpp"

namespace otter::ports {

class OpenSslSha256 final : public core::Sha256 {
 public:
  OpenSslSha256();
  ~OpenSslSha256();
  OpenSslSha256(const OpenSslSha256&) = delete;
  OpenSslSha256& operator=(const OpenSslSha256&) = delete;
  void reset() override;
  void update(const std::uint8_t* data, std::size_t n) override;
  void finish(std::uint8_t out[core::kHashSize]) override;
  void peek(std::uint8_t out[core::kHashSize]) override;

 private:
  void* ctx_;  // EVP_MD_CTX*, kept opaque so OpenSSL headers stay in the .cpp
};

class OpenSslCrypto final : public core::CryptoPort {
 public:
  core::Sha256& sha256() override { return sha_; }
  bool hmac_sha256(core::ByteView key, const core::ByteView* parts, std::size_t n,
                   std::uint8_t out[core::kHashSize]) override;
  bool random(std::uint8_t* out, std::size_t n) override;

 private:
  OpenSslSha256 sha_;
};

}  // namespace otter::ports
