// otter-server — live events for the console and `otter watch` (GET /api/v1/events, Server-Sent Events) and the
// audit trail. Single-threaded: used on the server's io thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <tuple>

namespace otter::server {

struct LiveEvent {
  std::int64_t id = 0;  ///< monotonically increasing per server run
  std::string type;     ///< "job.created" | "job.updated" | "job.finished" | "target.progress" | "target.updated"
                        ///< | "device.updated" | ...
  std::string data;     ///< JSON object text
};

class EventBus {
 public:
  using Subscriber = std::function<void(const LiveEvent&)>;

  /// Progress events of one (job, device) are throttled to at most one per `progress_interval` (the final one is
  /// always delivered via publish()).
  explicit EventBus(std::chrono::milliseconds progress_interval = std::chrono::milliseconds(200))
      : progress_interval_(progress_interval) {}

  std::int64_t subscribe(Subscriber fn);
  void unsubscribe(std::int64_t id);
  void publish(std::string type, std::string data);
  /// Throttled; returns true if the event was delivered.
  bool publish_progress(std::int64_t job_id, const std::string& device, std::string data);
  [[nodiscard]] std::size_t subscribers() const { return subs_.size(); }
  /// Number of (job, device) pairs whose last progress time is remembered (stale ones are pruned as it grows).
  [[nodiscard]] std::size_t tracked_progress() const { return last_progress_.size(); }

 private:
  static constexpr std::size_t kMinPruneAt = 1024;
  void prune_progress(std::chrono::steady_clock::time_point now);

  std::chrono::milliseconds progress_interval_;
  std::int64_t next_event_ = 1;
  std::int64_t next_sub_ = 1;
  std::map<std::int64_t, Subscriber> subs_;
  std::map<std::pair<std::int64_t, std::string>, std::chrono::steady_clock::time_point> last_progress_;
  std::size_t prune_at_ = kMinPruneAt;
};

}  // namespace otter::server
