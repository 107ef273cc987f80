// otter-server — counters for GET /metrics (Prometheus text exposition format 0.0.4). Single-threaded (io thread).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace otter::server {

class Metrics {
 public:
  void transfer_started() { ++transfers_started_; }
  /// outcome: "succeeded" | "unchanged" | "failed" | "canceled"; seconds = duration of the whole target.
  void transfer_finished(const std::string& outcome, std::uint64_t bytes_sent, double seconds);
  void transfer_retry() { ++retries_; }
  void http_request(int status, double seconds);

  /// otter_transfers_total{outcome}, otter_transfer_bytes_total, otter_transfer_retries_total,
  /// otter_transfer_duration_seconds (histogram), otter_active_jobs, otter_active_transfers,
  /// otter_http_requests_total{code}, otter_http_request_duration_seconds (histogram), otter_devices.
  [[nodiscard]] std::string render(std::size_t active_jobs, std::size_t active_transfers, std::size_t devices) const;

 private:
  struct Histogram {
    static constexpr std::array<double, 12> kBounds = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300};
    std::array<std::uint64_t, kBounds.size()> buckets{};
    std::uint64_t count = 0;
    double sum = 0;
    void observe(double v);
  };
  std::uint64_t transfers_started_ = 0;
  std::map<std::string, std::uint64_t> transfers_;
  std::uint64_t bytes_ = 0;
  std::uint64_t retries_ = 0;
  Histogram transfer_seconds_;
  std::map<int, std::uint64_t> http_;
  Histogram http_seconds_;
};

}  // namespace otter::server
