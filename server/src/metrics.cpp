// otter-server — Metrics: counters and histograms rendered in the Prometheus text exposition format 0.0.4.
#include "otter/server/metrics.hpp"

#include <cmath>
#include <iterator>
#include <string_view>

#include <fmt/format.h>

namespace otter::server {
namespace {

/// The outcomes listed even before they happen (a series that appears late breaks rate() over its first interval).
constexpr std::array<std::string_view, 4> kOutcomes = {"succeeded", "unchanged", "failed", "canceled"};

/// Prometheus float text: shortest round-trip form, +Inf / -Inf / NaN spelled as the format wants.
std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

/// Label values escape backslash, double quote and newline.
std::string label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (const char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

template <class T>
void sample(std::string& out, std::string_view name, T value) {
  fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
}

}  // namespace

void Metrics::Histogram::observe(double v) {
  if (std::isnan(v)) return;
  if (v < 0) v = 0;
  ++count;
  sum += v;
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    if (v <= kBounds[i]) {
      ++buckets[i];
      break;
    }
  }
}

void Metrics::transfer_finished(const std::string& outcome, std::uint64_t bytes_sent, double seconds) {
  ++transfers_[outcome];
  bytes_ += bytes_sent;
  transfer_seconds_.observe(seconds);
}

void Metrics::http_request(int status, double seconds) {
  ++http_[status];
  http_seconds_.observe(seconds);
}

namespace {

void histogram(std::string& out, std::string_view name, std::string_view help, const std::array<double, 12>& bounds,
               const std::array<std::uint64_t, 12>& buckets, std::uint64_t count, double sum) {
  header(out, name, "histogram", help);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += buckets[i];
    fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"{}\"}} {}\n", name, number(bounds[i]), cumulative);
  }
  fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"+Inf\"}} {}\n", name, count);
  fmt::format_to(std::back_inserter(out), "{}_sum {}\n", name, number(sum));
  fmt::format_to(std::back_inserter(out), "{}_count {}\n", name, count);
}

}  // namespace

std::string Metrics::render(std::size_t active_jobs, std::size_t active_transfers, std::size_t devices) const {
  static_assert(Histogram::kBounds.size() == 12, "histogram() takes 12 bounds");
  std::string out;
  out.reserve(4096);

  header(out, "otter_transfers_started_total", "counter", "Device transfers started (first attempt of a target).");
  sample(out, "otter_transfers_started_total", transfers_started_);

  header(out, "otter_transfers_total", "counter", "Device transfers finished, by outcome.");
  for (const std::string_view o : kOutcomes) {
    const auto it = transfers_.find(std::string(o));
    fmt::format_to(std::back_inserter(out), "otter_transfers_total{{outcome=\"{}\"}} {}\n", o,
                   it == transfers_.end() ? 0 : it->second);
  }
  for (const auto& [outcome, n] : transfers_) {
    bool known = false;
    for (const std::string_view o : kOutcomes) known = known || o == outcome;
    if (!known) {
      fmt::format_to(std::back_inserter(out), "otter_transfers_total{{outcome=\"{}\"}} {}\n", label_value(outcome),
                     n);
    }
  }

  header(out, "otter_transfer_bytes_total", "counter", "Content bytes sent to devices by finished transfers.");
  sample(out, "otter_transfer_bytes_total", bytes_);

  header(out, "otter_transfer_retries_total", "counter", "Transfer attempts retried after a retryable error.");
  sample(out, "otter_transfer_retries_total", retries_);

  histogram(out, "otter_transfer_duration_seconds", "Duration of device transfers, first attempt to final state.",
            Histogram::kBounds, transfer_seconds_.buckets, transfer_seconds_.count, transfer_seconds_.sum);

  header(out, "otter_active_jobs", "gauge", "Jobs not yet in a final state.");
  sample(out, "otter_active_jobs", active_jobs);

  header(out, "otter_active_transfers", "gauge", "Device transfers in progress now.");
  sample(out, "otter_active_transfers", active_transfers);

  header(out, "otter_http_requests_total", "counter", "HTTP requests answered, by status code.");
  for (const auto& [status, n] : http_) {
    fmt::format_to(std::back_inserter(out), "otter_http_requests_total{{code=\"{}\"}} {}\n", status, n);
  }

  histogram(out, "otter_http_request_duration_seconds", "HTTP request duration, first header byte to last byte.",
            Histogram::kBounds, http_seconds_.buckets, http_seconds_.count, http_seconds_.sum);

  header(out, "otter_devices", "gauge", "Registered devices.");
  sample(out, "otter_devices", devices);
  return out;
}

}  // namespace otter::server
