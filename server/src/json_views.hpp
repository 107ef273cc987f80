// otter-server — the JSON shapes of records, shared by the REST API and the event stream (private to the server).
// One place per shape, so /api/v1/jobs and the "job.updated" event can never drift apart.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "otter/server/model.hpp"

namespace otter::server::views {

using json = nlohmann::ordered_json;

/// Serialises without throwing on invalid UTF-8 (replaced by U+FFFD).
std::string dump(const json& j);

/// `{"code": N, "name": "NAME", "message": "..."}` (codes in docs/errors.md).
json error_json(ErrorCode code, const std::string& message);

/// A string or JSON null.
json optional_json(const std::optional<std::string>& s);

/// One device's part of a job: device, state, bytes, total, unchanged, attempts, started, finished, error.
json target_json(const JobTarget& t);

/// A job with every device's result (`GET /api/v1/jobs/{id}`).
json job_json(const JobRecord& j);

/// A job without the per-device list but with counts per state (the `job.*` events).
json job_summary_json(const JobRecord& j);

}  // namespace otter::server::views
