#include "json_views.hpp"

#include <map>

namespace otter::server::views {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json error_json(ErrorCode code, const std::string& message) {
  return {{"code", static_cast<unsigned>(code)}, {"name", error_name(code)}, {"message", message}};
}

json optional_json(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }

json target_json(const JobTarget& t) {
  return {{"device", t.device},
          {"state", std::string(to_string(t.state))},
          {"bytes", t.bytes},
          {"total", t.total},
          {"unchanged", t.unchanged},
          {"attempts", t.attempts},
          {"started", optional_json(t.started)},
          {"finished", optional_json(t.finished)},
          {"error", t.error_code ? error_json(*t.error_code, t.error_message) : json(nullptr)}};
}

namespace {
json job_fields(const JobRecord& j) {
  return {{"id", j.id},
          {"state", std::string(to_string(j.state))},
          {"created", j.created},
          {"started", optional_json(j.started)},
          {"finished", optional_json(j.finished)},
          {"artifact", j.artifact},
          {"sha256", j.artifact_sha256},
          {"size", j.artifact_size},
          {"as", j.as_name},
          {"kind", j.kind},
          {"reboot", j.reboot},
          {"origin", j.origin},
          {"cancel_requested", j.cancel_requested}};
}
}  // namespace

json job_json(const JobRecord& j) {
  json out = job_fields(j);
  json devices = json::array();
  for (const auto& t : j.targets) devices.push_back(target_json(t));
  out["devices"] = std::move(devices);
  return out;
}

json job_summary_json(const JobRecord& j) {
  std::map<std::string, std::size_t> counts = {
      {"queued", 0}, {"running", 0}, {"succeeded", 0}, {"failed", 0}, {"canceled", 0}};
  std::size_t unchanged = 0;
  for (const auto& t : j.targets) {
    ++counts[std::string(to_string(t.state))];
    if (t.state == TargetState::succeeded && t.unchanged) ++unchanged;
  }
  json c(counts);
  c["unchanged"] = unchanged;
  json out = job_fields(j);
  out["devices"] = j.targets.size();
  out["counts"] = std::move(c);
  return out;
}

}  // namespace otter::server::views
