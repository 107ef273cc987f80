#include "format.hpp"

#include <cmath>

#include <fmt/format.h>

#include "otter/common/hex.hpp"

namespace otter::cli {

int exit_code_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::ok:
      return kExitOk;
    case ErrorCode::invalid_argument:
    case ErrorCode::config:
    case ErrorCode::not_found:
      return kExitUsage;
    default:
      return kExitFailed;
  }
}

std::string format_size(std::uint64_t bytes) {
  constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return fmt::format("{} B", bytes);
  double v = static_cast<double>(bytes) / 1024.0;
  std::size_t unit = 0;
  while (v >= 1024.0 && unit + 1 < std::size(kUnits)) {
    v /= 1024.0;
    ++unit;
  }
  return fmt::format("{:.1f} {}", v, kUnits[unit]);
}

std::string format_rate(double bytes_per_second) {
  if (!std::isfinite(bytes_per_second) || bytes_per_second < 0) return "-- B/s";
  return format_size(static_cast<std::uint64_t>(bytes_per_second)) + "/s";
}

std::string format_eta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 359999) return "--:--";
  const auto s = static_cast<std::uint64_t>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

std::string short_hash(const Sha256Digest& digest) { return to_hex(digest).substr(0, 8) + "\u2026"; }

const char* kind_name(core::Kind kind) { return kind == core::Kind::firmware ? "firmware" : "file"; }

std::string push_line(const std::string& name, const PushOutcome& o, double seconds) {
  if (o.unchanged) {
    return fmt::format("ok: {} -> {} unchanged ({}, sha256 {}, nothing sent, {:.2f} s)", name, o.device.id,
                       format_size(o.total), short_hash(o.sha256), seconds);
  }
  const std::string resumed = o.resume_offset == 0 ? "0" : format_size(o.resume_offset);
  return fmt::format("ok: {} -> {} ({}, sha256 {}, resumed from {}, {:.2f} s){}", name, o.device.id,
                     format_size(o.total), short_hash(o.sha256), resumed, seconds,
                     o.rebooting ? ", device rebooting" : "");
}

std::string stat_line(const std::string& name, const StatOutcome& o) {
  // A device running a new image that has not confirmed itself yet says so (it rolls back if reset now).
  const char* pending = o.device.fw_state == core::FwState::pending_verify ? " [firmware pending verification]" : "";
  if (!o.exists) return fmt::format("{}: {}: does not exist{}", o.device.id, name, pending);
  return fmt::format("{}: {}: {} ({} B), sha256 {}{}", o.device.id, name, format_size(o.size), o.size,
                     to_hex(o.sha256), pending);
}

std::string error_line(const Error& error) { return "error: " + error.to_string(); }

Json push_json(const std::string& name, core::Kind kind, const PushOutcome& o, double seconds) {
  Json j = {
      {"ok", true},
      {"device", o.device.id},
      {"name", name},
      {"kind", kind_name(kind)},
      {"size", o.total},
      {"sha256", to_hex(o.sha256)},
      {"resumed_from", o.resume_offset},
      {"bytes_sent", o.bytes_sent},
      {"rebooting", o.rebooting},
      {"fw_state", fw_state_name(o.device.fw_state)},
      {"unchanged", o.unchanged},
      {"digest_last", o.digest_last},
      {"restarted", o.restarted},
      {"seconds", std::round(seconds * 1000.0) / 1000.0},
  };
  return j;
}

Json stat_json(const std::string& name, const StatOutcome& o) {
  Json j = {
      {"ok", true},
      {"device", o.device.id},
      {"name", name},
      {"exists", o.exists},
      {"size", o.size},
      {"sha256", o.exists ? Json(to_hex(o.sha256)) : Json(nullptr)},
      {"fw_state", fw_state_name(o.device.fw_state)},
  };
  return j;
}

std::string adapter_line(const std::string& name, const std::string& device, adapters::Protocol protocol,
                         const adapters::Outcome& o, double seconds) {
  std::string result;
  if (protocol == adapters::Protocol::legacy) {
    result = "sent; unconfirmed: the original receiver answers nothing";
  } else if (o.verified) {
    result = "confirmed by the device, read back and equal";
  } else if (o.confirmed) {
    result = o.device_message.empty() ? "confirmed by the device"
                                      : fmt::format("confirmed by the device: \"{}\"", o.device_message);
  } else {
    result = "sent";
  }
  return fmt::format("ok: {} -> {} ({}, {}, {}, {:.2f} s)", name, device, adapters::protocol_name(protocol),
                     format_size(o.size), result, seconds);
}

Json adapter_json(const std::string& name, const std::string& device, adapters::Protocol protocol,
                  adapters::Payload payload, const adapters::Outcome& o, double seconds) {
  return {
      {"ok", true},
      {"protocol", adapters::protocol_name(protocol)},
      {"device", device},
      {"name", name},
      {"kind", adapters::payload_name(payload)},
      {"size", o.size},
      {"bytes_sent", o.bytes_sent},
      {"confirmed", o.confirmed},
      {"verified", o.verified},
      {"device_message", o.device_message},
      {"seconds", std::round(seconds * 1000.0) / 1000.0},
  };
}

Json error_json(const Error& error) {
  return {
      {"ok", false},
      {"error",
       {{"code", static_cast<unsigned>(error.code)}, {"name", error_name(error.code)}, {"message", error.message}}}};
}

std::string dump_json(const Json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace otter::cli
