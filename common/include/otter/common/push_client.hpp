// otter — the host-side transfer engine: pushes a local file to a device, or asks a device about a file
// (docs/protocol.md). Used by the `otter` CLI (blocking form, here) and by otter-server (coroutine form,
// push_client_asio.hpp: one coroutine per device transfer).
//
//   otter::PushOptions o;
//   o.host = "10.0.0.5"; o.key = *otter::read_key_file("device.key"); o.path = "fw.bin"; o.name = "fw.bin";
//   otter::Result<otter::PushOutcome> r = otter::push(o, [](std::uint64_t acked, std::uint64_t total) { ... });
//   if (!r) std::cerr << r.error().to_string();   // e.g. "HASH_MISMATCH (5): content does not match"
//
// A push succeeds only when the device confirmed the commit (DONE with a valid MAC and the request's SHA-256).
// Errors carry the wire code the device sent (1..99) or a local code (CONNECT_FAILED, CONNECTION_CLOSED,
// DEVICE_AUTH, NOT_OTTER_DEVICE, IO, ...), see otter/core/error.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "otter/common/error.hpp"
#include "otter/common/file_hash.hpp"
#include "otter/core/codec.hpp"
#include "otter/core/ports.hpp"

namespace otter {

/// DATA payload per frame. Larger frames cost a device nothing (DATA is streamed) and save per-frame work on both
/// sides: on loopback, 60 KiB frames push ~25% faster than 16 KiB ones. A multiple of the page size.
constexpr std::uint32_t kDefaultChunkSize = 60 * 1024;
constexpr std::chrono::milliseconds kDefaultConnectTimeout{10'000};
constexpr std::chrono::milliseconds kDefaultIdleTimeout{30'000};

/// What the device said about itself in HELLO.
struct DeviceInfo {
  std::string id;
  std::uint16_t caps = 0;
  core::FwState fw_state = core::FwState::unknown;
  std::uint32_t window = 0;
  std::uint64_t max_size = 0;
  std::uint64_t free = 0;
};

/// "valid", "pending_verify" or "unknown" (the names the CLI's JSON and the server's API use).
const char* fw_state_name(core::FwState state) noexcept;

struct PushOptions {
  std::string host;  ///< name or address (IPv4 / IPv6), resolved
  std::uint16_t port = core::kDefaultPort;
  std::string key;   ///< pre-shared key, >= 16 bytes
  std::string name;  ///< target name on the device (the device validates it)
  core::Kind kind = core::Kind::file;
  std::uint8_t flags = 0;              ///< core::flags::reboot
  std::string path;                    ///< local file
  std::optional<std::uint64_t> size;   ///< absent: the file's size; present: must equal it (INVALID_ARGUMENT)
  std::optional<Sha256Digest> sha256;  ///< absent: computed from the file before connecting (a full read pass)
  std::chrono::milliseconds connect_timeout = kDefaultConnectTimeout;  ///< resolve + TCP connect
  std::chrono::milliseconds idle_timeout = kDefaultIdleTimeout;        ///< device silent this long -> TIMEOUT
  std::uint32_t chunk_size = kDefaultChunkSize;                        ///< DATA payload per frame, 1..65535
  /// If true, first asks the device (STAT, its own connection) and pushes nothing when the target already has this
  /// size and SHA-256 (PushOutcome::unchanged).
  bool skip_unchanged = false;
};

struct PushOutcome {
  bool unchanged = false;  ///< skip_unchanged and the device already had the content: nothing was sent
  DeviceInfo device;
  std::uint64_t resume_offset = 0;  ///< READY offset: bytes the device already held
  std::uint64_t bytes_sent = 0;     ///< DATA payload bytes put on the wire in this session
  std::uint64_t bytes_acked = 0;    ///< last ACK offset (cumulative, counts resumed bytes)
  std::uint64_t total = 0;          ///< content size; the committed size on success
  Sha256Digest sha256{};            ///< SHA-256 the device committed (DONE)
  bool rebooting = false;           ///< the device will reboot now
  /// The SHA-256 went after the data (protocol DIGEST_LAST: the file was read once, hashed while sent).
  bool digest_last = false;
  /// The device's partial copy was of other content (same name and size): the push started again from 0 (RESTART).
  bool restarted = false;
};

struct StatOptions {
  std::string host;
  std::uint16_t port = core::kDefaultPort;
  std::string key;
  std::string name;
  std::chrono::milliseconds connect_timeout = kDefaultConnectTimeout;
  std::chrono::milliseconds idle_timeout = kDefaultIdleTimeout;
};

struct StatOutcome {
  DeviceInfo device;
  bool exists = false;
  std::uint64_t size = 0;
  Sha256Digest sha256{};
};

/// Progress of a push: (bytes acknowledged by the device so far, counting resumed bytes; total size). Called on the
/// thread running the transfer after READY and after every ACK that advances.
using PushProgress = std::function<void(std::uint64_t acked, std::uint64_t total)>;

/// Blocking push on a private io_context.
Result<PushOutcome> push(const PushOptions& options, const PushProgress& progress = {});
/// Blocking STAT on a private io_context.
Result<StatOutcome> stat(const StatOptions& options);

/// "host:port", or "[host]:port" for an IPv6 literal.
std::string format_endpoint(const std::string& host, std::uint16_t port);

}  // namespace otter
