#include "otter/ports/mbedtls_crypto.hpp"

#include <mbedtls/md.h>

#include <cstring>

namespace otter::ports {
namespace {

// mbedTLS 2.28 names the streaming SHA-256 functions *_ret; 3.x dropped the suffix.
#if defined(MBEDTLS_VERSION_MAJOR) && MBEDTLS_VERSION_MAJOR >= 3
int sha_starts(mbedtls_sha256_context* c) { return mbedtls_sha256_starts(c, 0); }
int sha_update(mbedtls_sha256_context* c, const unsigned char* d, std::size_t n) {
  return mbedtls_sha256_update(c, d, n);
}
int sha_finish(mbedtls_sha256_context* c, unsigned char* o) { return mbedtls_sha256_finish(c, o); }
#else
int sha_starts(mbedtls_sha256_context* c) { return mbedtls_sha256_starts_ret(c, 0); }
int sha_update(mbedtls_sha256_context* c, const unsigned char* d, std::size_t n) {
  return mbedtls_sha256_update_ret(c, d, n);
}
int sha_finish(mbedtls_sha256_context* c, unsigned char* o) { return mbedtls_sha256_finish_ret(c, o); }
#endif

}  // namespace

MbedTlsSha256::MbedTlsSha256() {
  mbedtls_sha256_init(&ctx_);
  reset();
}

MbedTlsSha256::~MbedTlsSha256() { mbedtls_sha256_free(&ctx_); }

void MbedTlsSha256::reset() { sha_starts(&ctx_); }

void MbedTlsSha256::update(const std::uint8_t* data, std::size_t n) {
  if (n != 0) sha_update(&ctx_, data, n);
}

void MbedTlsSha256::finish(std::uint8_t out[core::kHashSize]) { sha_finish(&ctx_, out); }

void MbedTlsSha256::peek(std::uint8_t out[core::kHashSize]) {
  mbedtls_sha256_context copy;
  mbedtls_sha256_init(&copy);
  mbedtls_sha256_clone(&copy, &ctx_);
  sha_finish(&copy, out);
  mbedtls_sha256_free(&copy);
}

MbedTlsHmacSha256::MbedTlsHmacSha256() {
  mbedtls_md_init(&ctx_);
  ready_ = mbedtls_md_setup(&ctx_, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1) == 0;
}

MbedTlsHmacSha256::~MbedTlsHmacSha256() { mbedtls_md_free(&ctx_); }

bool MbedTlsHmacSha256::compute(core::ByteView key, const core::ByteView* parts, std::size_t n,
                                std::uint8_t out[core::kHashSize]) {
  static const unsigned char kEmpty = 0;
  int rc = ready_ ? 0 : -1;
  if (rc == 0) rc = mbedtls_md_hmac_starts(&ctx_, key.size != 0 ? key.data : &kEmpty, key.size);
  for (std::size_t i = 0; rc == 0 && i < n; ++i) {
    if (parts[i].size != 0) rc = mbedtls_md_hmac_update(&ctx_, parts[i].data, parts[i].size);
  }
  if (rc == 0) rc = mbedtls_md_hmac_finish(&ctx_, out);
  return rc == 0;
}

MbedTlsCrypto::MbedTlsCrypto() {
  mbedtls_entropy_init(&entropy_);
  mbedtls_ctr_drbg_init(&drbg_);
  static const unsigned char kPers[] = "otter";
  seeded_ = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_, kPers, sizeof kPers - 1) == 0;
}

MbedTlsCrypto::~MbedTlsCrypto() {
  mbedtls_ctr_drbg_free(&drbg_);
  mbedtls_entropy_free(&entropy_);
}

bool MbedTlsCrypto::random(std::uint8_t* out, std::size_t n) {
  if (!seeded_) return false;
  while (n > 0) {
    const std::size_t chunk = n > MBEDTLS_CTR_DRBG_MAX_REQUEST ? MBEDTLS_CTR_DRBG_MAX_REQUEST : n;
    if (mbedtls_ctr_drbg_random(&drbg_, out, chunk) != 0) return false;
    out += chunk;
    n -= chunk;
  }
  return true;
}

}  // namespace otter::ports
