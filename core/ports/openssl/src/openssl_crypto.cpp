#include "otter/ports/openssl_crypto.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdlib>

namespace otter::ports {
namespace {
EVP_MD_CTX* md(void* p) { return static_cast<EVP_MD_CTX*>(p); }
}  // namespace

OpenSslSha256::OpenSslSha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr) std::abort();
  reset();
}

OpenSslSha256::~OpenSslSha256() { EVP_MD_CTX_free(md(ctx_)); }

void OpenSslSha256::reset() {
  if (EVP_DigestInit_ex(md(ctx_), EVP_sha256(), nullptr) != 1) std::abort();
}

void OpenSslSha256::update(const std::uint8_t* data, std::size_t n) {
  if (n != 0 && EVP_DigestUpdate(md(ctx_), data, n) != 1) std::abort();
}

void OpenSslSha256::finish(std::uint8_t out[core::kHashSize]) {
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(md(ctx_), out, &len) != 1 || len != core::kHashSize) std::abort();
}

void OpenSslSha256::peek(std::uint8_t out[core::kHashSize]) {
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  unsigned int len = 0;
  if (copy == nullptr || EVP_MD_CTX_copy_ex(copy, md(ctx_)) != 1 || EVP_DigestFinal_ex(copy, out, &len) != 1 ||
      len != core::kHashSize) {
    std::abort();
  }
  EVP_MD_CTX_free(copy);
}

bool OpenSslCrypto::hmac_sha256(core::ByteView key, const core::ByteView* parts, std::size_t n,
                                std::uint8_t out[core::kHashSize]) {
  // HMAC_* is deprecated in OpenSSL 3 in favour of EVP_MAC; EVP_MAC is used here.
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
  static const unsigned char kEmpty = 0;
  bool ok = ctx != nullptr && EVP_MAC_init(ctx, key.size != 0 ? key.data : &kEmpty, key.size, params) == 1;
  for (std::size_t i = 0; ok && i < n; ++i) {
    if (parts[i].size != 0) ok = EVP_MAC_update(ctx, parts[i].data, parts[i].size) == 1;
  }
  std::size_t len = 0;
  ok = ok && EVP_MAC_final(ctx, out, &len, core::kHashSize) == 1 && len == core::kHashSize;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return ok;
}

bool OpenSslCrypto::random(std::uint8_t* out, std::size_t n) { return RAND_bytes(out, static_cast<int>(n)) == 1; }

}  // namespace otter::ports
