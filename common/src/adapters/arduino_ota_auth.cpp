// otter — ArduinoOTA challenge/response arithmetic (see arduino_ota_auth.hpp). OpenSSL only: no hand-written hashes.
#include "otter/common/arduino_ota_auth.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <stdexcept>

namespace otter::arduino_ota {
namespace {

std::string hex(const unsigned char* data, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0x0F]);
  }
  return out;
}

std::string digest_hex(const EVP_MD* md, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr) != 1) {
    throw std::runtime_error("EVP_Digest failed");
  }
  return hex(out.data(), len);
}

}  // namespace

std::string md5_hex(std::string_view data) { return digest_hex(EVP_md5(), data); }

std::string sha256_hex(std::string_view data) { return digest_hex(EVP_sha256(), data); }

std::string auth_response(AuthScheme scheme, std::string_view password_hash, std::string_view nonce,
                          std::string_view cnonce) {
  std::string tail;
  tail.reserve(nonce.size() + cnonce.size() + 2);
  tail.append(":").append(nonce).append(":").append(cnonce);
  if (scheme == AuthScheme::md5) return md5_hex(std::string(password_hash) + tail);

  const std::string salt = std::string(nonce) + ":" + std::string(cnonce);
  std::array<unsigned char, 32> key{};
  if (PKCS5_PBKDF2_HMAC(password_hash.data(), static_cast<int>(password_hash.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                        static_cast<int>(kPbkdf2Iterations), EVP_sha256(), static_cast<int>(key.size()),
                        key.data()) != 1) {
    throw std::runtime_error("PKCS5_PBKDF2_HMAC failed");
  }
  return sha256_hex(hex(key.data(), key.size()) + tail);
}

std::string random_hex(std::size_t chars) {
  std::string bytes((chars + 1) / 2, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(bytes.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  std::string out = hex(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  out.resize(chars);
  return out;
}

}  // namespace otter::arduino_ota
