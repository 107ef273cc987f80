// otter — the port interfaces through which the portable core reaches crypto and storage.
//
// A port is implemented once per platform: core/ports/openssl (hosts), core/ports/mbedtls (devices; also
// built and tested on hosts), core/ports/posix (storage on a POSIX directory). Ports have protected, non-virtual
// destructors: the core never deletes them (and needs no operator delete).
#pragma once

#include <cstddef>
#include <cstdint>

#include "otter/core/bytes.hpp"
#include "otter/core/error.hpp"

namespace otter::core {

constexpr std::size_t kHashSize = 32;

/// A streaming SHA-256 context.
class Sha256 {
 public:
  virtual void reset() = 0;
  virtual void update(const std::uint8_t* data, std::size_t n) = 0;
  /// Writes the digest; the context must be reset() before reuse.
  virtual void finish(std::uint8_t out[kHashSize]) = 0;
  /// Writes the digest of the bytes so far and leaves the stream open (update() may go on).
  virtual void peek(std::uint8_t out[kHashSize]) = 0;

 protected:
  ~Sha256() = default;
};

class CryptoPort {
 public:
  /// The port's streaming hasher for content (one per port instance; one port instance per session).
  virtual Sha256& sha256() = 0;
  /// HMAC-SHA256(key, parts[0] || parts[1] || ... || parts[n-1]). False if the backend failed: the output is then
  /// unusable and the caller must fail the session (INTERNAL), never compare it.
  [[nodiscard]] virtual bool hmac_sha256(ByteView key, const ByteView* parts, std::size_t n,
                                         std::uint8_t out[kHashSize]) = 0;
  /// Fills out with cryptographically secure random bytes. False if the RNG failed.
  virtual bool random(std::uint8_t* out, std::size_t n) = 0;

 protected:
  ~CryptoPort() = default;
};

enum class Kind : std::uint8_t { file = 0, firmware = 1 };

struct FileStat {
  bool exists = false;
  std::uint64_t size = 0;
  std::uint8_t sha256[kHashSize] = {};
};

/// Storage for one session: at most one transfer is open at a time.
///
/// Errors use the wire codes: BAD_NAME (the port refuses a name the core accepted, e.g. too long for its file
/// system), NO_SPACE, STORAGE, BUSY, UNSUPPORTED_KIND.
class StoragePort {
 public:
  /// Free space for artifacts, bytes.
  virtual std::uint64_t free_space() = 0;

  /// Opens the transfer of `name` (already validated by the core) with the announced size and SHA-256.
  /// Locks the name: a second begin() of a locked name (from another session sharing the device) fails with BUSY.
  /// If a partial copy of exactly this (name, size, sha256) is held, feeds its bytes into `hasher` (already reset)
  /// and returns how many bytes it holds; otherwise discards any other partial copy of the name and returns 0.
  virtual Result<std::uint64_t> begin(ByteView name, Kind kind, std::uint64_t size,
                                      const std::uint8_t sha256[kHashSize], Sha256& hasher) = 0;
  /// Appends to the open transfer's partial copy.
  virtual Result<void> write(const std::uint8_t* data, std::size_t n) = 0;
  /// All bytes received and verified: make the partial copy durable and atomically replace the target with it.
  /// Unlocks the name. On failure the previous target is intact and no partial target exists.
  virtual Result<void> commit() = 0;
  /// The transfer was interrupted: make the partial copy durable for a later resume, unlock the name.
  virtual void suspend() = 0;
  /// The transfer failed for good (e.g. hash mismatch): delete the partial copy, unlock the name.
  virtual void discard() = 0;
  /// Size and SHA-256 of the file `name` (hashing it with `hasher`, already reset). exists=false if absent.
  virtual Result<FileStat> stat(ByteView name, Sha256& hasher) = 0;

 protected:
  ~StoragePort() = default;
};

}  // namespace otter::core
