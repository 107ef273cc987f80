// otter-server — the records the server keeps (devices, jobs and their per-device results, events).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "otter/core/error.hpp"

namespace otter::server {

/// RFC 3339 UTC timestamp with milliseconds, e.g. "2026-11-27T10:00:00.123Z".
std::string now_rfc3339();

struct DeviceRecord {
  std::int64_t id = 0;
  std::string name;     ///< unique, [A-Za-z0-9._-]{1,64}
  std::string address;  ///< "host:port"
  std::string protocol = "otter";
  std::string key;  ///< write-only in the API
  std::vector<std::string> tags;
  std::string created;
  std::string updated;
  std::optional<std::string> last_seen;
  std::optional<std::string> last_result_json;  ///< JSON object text
  bool online = false;
};

enum class JobState { queued, running, succeeded, failed, canceled };
/// Per-device state within a job; same words as JobState.
using TargetState = JobState;

std::string_view to_string(JobState s);
std::optional<JobState> job_state_from_string(std::string_view s);
[[nodiscard]] inline bool is_final(JobState s) {
  return s == JobState::succeeded || s == JobState::failed || s == JobState::canceled;
}

struct JobTarget {
  std::string device;
  TargetState state = TargetState::queued;
  std::uint64_t bytes = 0;  ///< content bytes the device holds (acked)
  std::uint64_t total = 0;
  int attempts = 0;
  bool unchanged = false;  ///< succeeded without sending: the device already held the same SHA-256
  std::optional<ErrorCode> error_code;
  std::string error_message;
  std::optional<std::string> started;
  std::optional<std::string> finished;
};

struct JobRecord {
  std::int64_t id = 0;
  std::string artifact;         ///< path relative to the artifact root
  std::string artifact_sha256;  ///< hex, fixed when the job is created
  std::uint64_t artifact_size = 0;
  std::string as_name;        ///< name on the device
  std::string kind = "file";  ///< "file" | "firmware"
  bool reboot = false;
  JobState state = JobState::queued;
  std::string origin = "api";  ///< "api" | "upload" (the original POST /api/upload) | "cli"
  std::string created;
  std::optional<std::string> started;
  std::optional<std::string> finished;
  bool cancel_requested = false;
  std::vector<JobTarget> targets;
};

struct EventRecord {
  std::int64_t id = 0;
  std::string ts;
  std::string type;  ///< e.g. "device.created", "job.created", "job.finished", "target.finished"
  std::optional<std::int64_t> job_id;
  std::optional<std::string> device;
  std::string message;
  std::string data_json = "{}";
};

}  // namespace otter::server
