// otter-server — EventBus: live events fanned out to subscribers (SSE streams), progress throttled per target.
#include "otter/server/events.hpp"

#include <algorithm>
#include <exception>
#include <iterator>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

namespace otter::server {

std::int64_t EventBus::subscribe(Subscriber fn) {
  const std::int64_t id = next_sub_++;
  subs_.emplace(id, std::move(fn));
  return id;
}

void EventBus::unsubscribe(std::int64_t id) { subs_.erase(id); }

void EventBus::publish(std::string type, std::string data) {
  LiveEvent ev;
  ev.id = next_event_++;
  ev.type = std::move(type);
  ev.data = std::move(data);
  if (subs_.empty()) return;
  // A subscriber may (un)subscribe while being called: deliver to the ones present now that are still subscribed,
  // each through a copy of its function (its map entry may be erased while it runs).
  std::vector<std::int64_t> ids;
  ids.reserve(subs_.size());
  for (const auto& [id, fn] : subs_) ids.push_back(id);
  for (const std::int64_t id : ids) {
    const auto it = subs_.find(id);
    if (it == subs_.end()) continue;
    const Subscriber fn = it->second;
    try {
      fn(ev);
    } catch (const std::exception& e) {
      spdlog::warn("event subscriber {} failed on {}: {}", id, ev.type, e.what());
    }
  }
}

bool EventBus::publish_progress(std::int64_t job_id, const std::string& device, std::string data) {
  const auto now = std::chrono::steady_clock::now();
  auto key = std::make_pair(job_id, device);
  const auto it = last_progress_.find(key);
  if (it != last_progress_.end()) {
    if (now - it->second < progress_interval_) return false;
    it->second = now;
  } else {
    last_progress_.emplace(std::move(key), now);
    prune_progress(now);
  }
  publish("target.progress", std::move(data));
  return true;
}

void EventBus::prune_progress(std::chrono::steady_clock::time_point now) {
  // Entries older than the interval throttle nothing: drop them once the map has doubled since the last sweep, so
  // a long-running server does not keep one entry per (job, device) forever (amortised O(1) per insertion).
  if (last_progress_.size() < prune_at_) return;
  for (auto it = last_progress_.begin(); it != last_progress_.end();) {
    it = now - it->second >= progress_interval_ ? last_progress_.erase(it) : std::next(it);
  }
  prune_at_ = std::max<std::size_t>(kMinPruneAt, 2 * last_progress_.size());
}

}  // namespace otter::server
