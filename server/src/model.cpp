#include "otter/server/model.hpp"

#include <chrono>

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace otter::server {

std::string now_rfc3339() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", std::chrono::floor<std::chrono::seconds>(now), ms);
}

std::string_view to_string(JobState s) {
  switch (s) {
    case JobState::queued:
      return "queued";
    case JobState::running:
      return "running";
    case JobState::succeeded:
      return "succeeded";
    case JobState::failed:
      return "failed";
    case JobState::canceled:
      return "canceled";
  }
  return "failed";
}

std::optional<JobState> job_state_from_string(std::string_view s) {
  for (auto st : {JobState::queued, JobState::running, JobState::succeeded, JobState::failed, JobState::canceled}) {
    if (to_string(st) == s) return st;
  }
  return std::nullopt;
}

}  // namespace otter::server
