// otter — the mbedTLS 2.28 configuration of the microcontroller build (tests/mcu): only what the mbedTLS crypto port
// (core/ports/mbedtls) needs. Selected with -DMBEDTLS_CONFIG_FILE="otter_mcu_mbedtls_config.h" for mbedcrypto, the
// port and everything that includes their headers.
//
//   SHA-256              content hashes                       MBEDTLS_SHA256_C
//   HMAC-SHA256          the protocol's MACs (mbedtls_md_hmac_*)  MBEDTLS_MD_C
//   random()             CTR_DRBG (AES-256) seeded by the entropy collector
//                                                             MBEDTLS_CTR_DRBG_C, MBEDTLS_AES_C, MBEDTLS_ENTROPY_C
//
// Entropy: no OS, so no platform source (MBEDTLS_NO_PLATFORM_ENTROPY); the only source is mbedtls_hardware_poll()
// (MBEDTLS_ENTROPY_HARDWARE_ALT), which a device implements on its hardware RNG (ESP-IDF does the same with
// esp_fill_random). The emulated board (qemu mps2-an385) has no RNG: tests/mcu/test_entropy.cpp supplies a
// deterministic TEST-ONLY stand-in that must never be linked into a device.
#ifndef OTTER_MCU_MBEDTLS_CONFIG_H
#define OTTER_MCU_MBEDTLS_CONFIG_H

// System support.
#define MBEDTLS_NO_PLATFORM_ENTROPY
#define MBEDTLS_ENTROPY_HARDWARE_ALT
// AES tables as constants in flash instead of being generated into RAM at start (8 KiB of .bss otherwise), and
// only one of each (the other three are rotations computed on the fly).
#define MBEDTLS_AES_ROM_TABLES
#define MBEDTLS_AES_FEWER_TABLES

// Modules.
#define MBEDTLS_AES_C
#define MBEDTLS_CTR_DRBG_C
#define MBEDTLS_ENTROPY_C
#define MBEDTLS_MD_C
#define MBEDTLS_SHA256_C

// The entropy collector keeps a table of sources inside every MbedTlsCrypto: one is used.
#define MBEDTLS_ENTROPY_MAX_SOURCES 2

#include "mbedtls/check_config.h"

#endif  // OTTER_MCU_MBEDTLS_CONFIG_H
