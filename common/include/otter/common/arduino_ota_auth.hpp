// otter — the challenge/response arithmetic of stock ArduinoOTA (arduino-esp32), shared by the arduino-ota adapter
// and the simulator (otter-agent --mode arduino-ota). Everything is lower-case hex text, as on the wire.
//
//   legacy (core <= 3.3.0): nonce 32 hex; response = MD5hex(MD5hex(password) ":" nonce ":" cnonce), cnonce 32 hex
//   pbkdf2 (core >= 3.3.1): nonce 64 hex; key = hex(PBKDF2-HMAC-SHA256(password = SHA256hex(password) as text,
//                           salt = nonce ":" cnonce, 10000 iterations, 32 bytes));
//                           response = SHA256hex(key ":" nonce ":" cnonce), cnonce 64 hex
// A >= 3.3.1 device given an MD5 hash with setPasswordHash() runs the pbkdf2 scheme over MD5hex(password) instead:
// espota tries SHA256hex first, then MD5hex on a fresh invitation.
#pragma once

#include <string>
#include <string_view>

namespace otter::arduino_ota {

enum class AuthScheme { md5, pbkdf2_sha256 };

constexpr unsigned kPbkdf2Iterations = 10000;
constexpr unsigned kUpdateFlash = 0;        ///< U_FLASH: the invitation's command for a firmware image
constexpr unsigned kUpdateSpiffs = 100;     ///< U_SPIFFS: a filesystem image
constexpr unsigned kUpdateAuth = 200;       ///< U_AUTH: the answer to "AUTH <nonce>"
constexpr unsigned kDeviceReadSize = 1460;  ///< the device reads at most this much per ack
constexpr unsigned kDefaultPort = 3232;

std::string md5_hex(std::string_view data);
std::string sha256_hex(std::string_view data);

/// The response to "AUTH <nonce>". `password_hash` is the device's stored hash: MD5hex(password) for md5,
/// SHA256hex(password) (or MD5hex for a device given an MD5 hash) for pbkdf2_sha256.
std::string auth_response(AuthScheme scheme, std::string_view password_hash, std::string_view nonce,
                          std::string_view cnonce);

/// Random lower-case hex of `chars` characters (OpenSSL RAND_bytes).
std::string random_hex(std::size_t chars);

}  // namespace otter::arduino_ota
