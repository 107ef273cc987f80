// otter CLI — a one-line progress bar on a terminal (stderr): bytes, percentage, rate, ETA.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace otter::cli {

class ProgressBar {
 public:
  /// Draws on `fd` only if `enabled` and `fd` is a terminal; otherwise every call is a no-op.
  explicit ProgressBar(bool enabled, int fd = 2);
  ~ProgressBar();  ///< clears the line
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  [[nodiscard]] bool active() const { return active_; }

  /// Starts a phase ("hashing", "pushing x"): `base` bytes are already done (a resume) and do not count for the rate.
  void start(std::string label, std::uint64_t base);
  /// Changes the label without restarting the rate (e.g. "job 7: 3/50 devices").
  void set_label(std::string label) { label_ = std::move(label); }
  /// Redraws at most 10 times a second, and always when done == total.
  void update(std::uint64_t done, std::uint64_t total);
  /// Clears the line.
  void clear();

  /// The line for a terminal `width` columns wide (pure; for tests).
  static std::string render(const std::string& label, std::uint64_t done, std::uint64_t total, std::uint64_t base,
                            double elapsed_seconds, std::size_t width);

 private:
  void write_line(const std::string& line);

  bool active_;
  int fd_;
  bool drawn_ = false;
  std::string label_;
  std::uint64_t base_ = 0;
  std::chrono::steady_clock::time_point started_{};
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace otter::cli
