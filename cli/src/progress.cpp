#include "progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "format.hpp"

namespace otter::cli {
namespace {

std::size_t terminal_width(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
  return 80;
}

}  // namespace

ProgressBar::ProgressBar(bool enabled, int fd) : active_(enabled && ::isatty(fd) == 1), fd_(fd) {}

ProgressBar::~ProgressBar() { clear(); }

void ProgressBar::start(std::string label, std::uint64_t base) {
  label_ = std::move(label);
  base_ = base;
  started_ = std::chrono::steady_clock::now();
  last_draw_ = {};
}

void ProgressBar::update(std::uint64_t done, std::uint64_t total) {
  if (!active_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done != total && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - started_).count();
  write_line(render(label_, done, total, base_, elapsed, terminal_width(fd_)));
}

void ProgressBar::clear() {
  if (!active_ || !drawn_) return;
  write_line("");
  drawn_ = false;
}

void ProgressBar::write_line(const std::string& line) {
  const std::string s = "\r" + line + "\x1b[K";
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd_, s.data() + off, s.size() - off);
    if (n <= 0) {
      active_ = false;  // the terminal went away: stop drawing
      return;
    }
    off += static_cast<std::size_t>(n);
  }
  drawn_ = !line.empty();
}

std::string ProgressBar::render(const std::string& label, std::uint64_t done, std::uint64_t total, std::uint64_t base,
                                double elapsed_seconds, std::size_t width) {
  const double fraction = total == 0 ? 1.0 : std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
  const auto moved = static_cast<double>(done > base ? done - base : 0);
  const double rate = elapsed_seconds > 0.05 ? moved / elapsed_seconds : -1.0;
  const double eta = rate > 0 ? static_cast<double>(total > done ? total - done : 0) / rate : -1.0;
  // Fixed-width fields keep the bar from jittering; the percentage is floored (100% only when done).
  const std::string suffix =
      fmt::format(" {:3}%  {:>9} / {:<9}  {:>11}  ETA {:>5}", static_cast<int>(std::floor(fraction * 100.0)),
                  format_size(done), format_size(total), format_rate(rate), format_eta(eta));
  std::string name = label.size() > 24 ? label.substr(0, 23) + "~" : label;
  // Leave the last column free so that the terminal never wraps.
  const std::size_t fixed = name.size() + 3 + suffix.size() + 1;
  if (width <= fixed + 10) return name + suffix;
  const std::size_t bar = std::min<std::size_t>(width - fixed, 40);
  const auto filled = static_cast<std::size_t>(fraction * static_cast<double>(bar));
  return fmt::format("{} [{}{}]{}", name, std::string(filled, '#'), std::string(bar - filled, '.'), suffix);
}

}  // namespace otter::cli
