// otter CLI — human-readable and JSON renderings of results, and the exit-code policy.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "otter/common/adapters.hpp"
#include "otter/common/error.hpp"
#include "otter/common/push_client.hpp"

namespace otter::cli {

using Json = nlohmann::ordered_json;

/// Exit codes of the `otter` binary.
enum Exit : int {
  kExitOk = 0,      ///< the device confirmed the operation (DONE / STAT_RESULT with a valid MAC)
  kExitFailed = 1,  ///< device or transfer error
  kExitUsage = 2,   ///< bad arguments or configuration (key file, local file)
};

/// kExitUsage for INVALID_ARGUMENT, CONFIG and NOT_FOUND (errors found before talking to a device), else kExitFailed.
int exit_code_for(ErrorCode code);

/// "5 B", "1.5 KiB", "256.0 MiB", "2.00 GiB".
std::string format_size(std::uint64_t bytes);
/// "85.2 MiB/s".
std::string format_rate(double bytes_per_second);
/// "0:07", "12:34", "1:02:03"; "--:--" if unknown (negative or not finite).
std::string format_eta(double seconds);
/// The first 8 hex digits and an ellipsis: "2cf24dba…".
std::string short_hash(const Sha256Digest& digest);
const char* kind_name(core::Kind kind);

/// "ok: greeting.txt -> dev-1 (5 B, sha256 2cf24dba…, resumed from 0, 0.01 s)"
std::string push_line(const std::string& name, const PushOutcome& outcome, double seconds);
/// "dev-1: greeting.txt: 5 B, sha256 <64 hex>" or "dev-1: greeting.txt: does not exist"
std::string stat_line(const std::string& name, const StatOutcome& outcome);
/// "error: HASH_MISMATCH (5): <message>"
std::string error_line(const Error& error);

Json push_json(const std::string& name, core::Kind kind, const PushOutcome& outcome, double seconds);
Json stat_json(const std::string& name, const StatOutcome& outcome);
/// {"ok":false,"error":{"code":5,"name":"HASH_MISMATCH","message":"..."}}
Json error_json(const Error& error);

/// A push to a stock device (adapters.hpp): "ok: NAME -> HOST:PORT (PROTOCOL, SIZE, …, S s)" / its JSON object
/// {"ok", "protocol", "device", "name", "kind", "size", "bytes_sent", "confirmed", "verified", "device_message",
/// "seconds"}.
std::string adapter_line(const std::string& name, const std::string& device, adapters::Protocol protocol,
                         const adapters::Outcome& outcome, double seconds);
Json adapter_json(const std::string& name, const std::string& device, adapters::Protocol protocol,
                  adapters::Payload payload, const adapters::Outcome& outcome, double seconds);

/// One line of JSON. Strings that are not valid UTF-8 (names and messages are bytes) are written with U+FFFD.
std::string dump_json(const Json& j);

}  // namespace otter::cli
