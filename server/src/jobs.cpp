// otter-server — JobEngine: one artifact to many devices (behaviour in jobs.hpp).
//
// Everything runs on the io thread. Per target a small run record follows the transfer: queued in the FIFO, in
// flight on the channel (holding one of cfg.concurrency slots), waiting for a backoff timer, or done. Callbacks from
// the channel and the timers carry (job id, target index, attempt id) and a weak "engine alive" token, so a late
// callback of an abandoned attempt (or of a destroyed engine) is ignored.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "json_views.hpp"
#include "otter/server/artifacts.hpp"
#include "otter/server/config.hpp"
#include "otter/server/events.hpp"
#include "otter/server/jobs.hpp"
#include "otter/server/metrics.hpp"
#include "otter/server/store.hpp"

namespace otter::server {

bool is_retryable(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::connect_failed:
    case ErrorCode::connection_closed:
    case ErrorCode::timeout:
    case ErrorCode::busy:
    case ErrorCode::io:
    case ErrorCode::storage:
    case ErrorCode::hash_mismatch:
    case ErrorCode::internal:
      return true;
    default:
      return false;
  }
}

namespace {

namespace asio = boost::asio;
using json = nlohmann::ordered_json;
using views::dump;
using views::error_json;
using Clock = std::chrono::steady_clock;

constexpr auto kPersistInterval = std::chrono::seconds(1);
constexpr std::chrono::milliseconds kMaxBackoff{60'000};

/// True if the error shows that the device itself answered (so it is online).
bool device_answered(ErrorCode code) {
  return code == ErrorCode::device_auth || (is_wire_error(code) && code != ErrorCode::timeout);
}

std::string base_name(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string short_hash(const std::string& hex) { return hex.size() > 12 ? hex.substr(0, 12) + "…" : hex; }

struct TargetRun {
  enum class Phase { queued, transferring, backoff, done };
  Phase phase = Phase::done;
  int max_attempts = 1;
  std::uint64_t attempt_id = 0;  ///< of the attempt in flight (callbacks of older ones are ignored)
  std::function<void()> cancel;  ///< while transferring
  bool cancel_requested = false;
  std::optional<asio::steady_timer> timer;  ///< backoff
  bool attempted = false;                   ///< at least one attempt started in this server run
  bool answered = false;                    ///< the device sent progress in the current attempt
  Clock::time_point first_start{};
  Clock::time_point last_persist{};
  std::uint64_t persisted_bytes = 0;
  Clock::time_point rate_since{};
  std::uint64_t rate_base = 0;
  std::uint64_t rate = 0;  ///< bytes/s in the current attempt
};

struct Job {
  JobRecord rec;
  std::vector<TargetRun> runs;  ///< parallel to rec.targets
  bool artifact_verified = false;
  std::int64_t verified_mtime_ns = 0;
  std::string verified_path;
};

class Engine final : public JobEngine {
 public:
  Engine(asio::io_context& io, ServerConfig cfg, Store& store, ArtifactStore& artifacts, EventBus& events,
         DeviceChannel& channel, Metrics* metrics)
      : io_(io),
        cfg_(std::move(cfg)),
        store_(store),
        artifacts_(artifacts),
        events_(events),
        channel_(channel),
        metrics_(metrics),
        rng_(std::random_device{}()) {}

  ~Engine() override {
    alive_.reset();  // every pending callback becomes a no-op
    for (auto& [id, job] : jobs_) {
      for (auto& rt : job->runs) {
        if (rt.cancel) {
          auto cancel = std::move(rt.cancel);
          cancel();
        }
        rt.timer.reset();  // destroying a timer cancels its wait and, unlike cancel(), cannot throw
      }
    }
  }

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  Result<JobRecord> submit(JobRequest request) override {
    if (request.kind != "file" && request.kind != "firmware" && request.kind != "filesystem") {
      return make_error(ErrorCode::invalid_argument,
                        fmt::format(R"(kind must be "file", "firmware" or "filesystem", not "{}")", request.kind));
    }
    auto info = artifacts_.resolve_hashed(request.artifact);
    if (!info) return tl::unexpected(info.error());

    std::vector<std::string> names;
    std::set<std::string> seen;
    for (const auto& name : request.devices) {
      if (!seen.insert(name).second) continue;
      auto dev = store_.get_device(name);
      if (!dev) return tl::unexpected(dev.error());
      if (!*dev) return make_error(ErrorCode::not_found, fmt::format("device '{}' is not registered", name));
      names.push_back(name);
    }
    if (request.tag) {
      auto all = store_.list_devices();
      if (!all) return tl::unexpected(all.error());
      std::size_t tagged = 0;
      for (const auto& d : *all) {
        if (std::find(d.tags.begin(), d.tags.end(), *request.tag) == d.tags.end()) continue;
        ++tagged;
        if (seen.insert(d.name).second) names.push_back(d.name);
      }
      if (tagged == 0) {
        return make_error(ErrorCode::invalid_argument, fmt::format("no device has the tag '{}'", *request.tag));
      }
    }
    if (names.empty()) {
      return make_error(ErrorCode::invalid_argument, "no target devices: name devices or a tag");
    }

    JobRecord rec;
    rec.artifact = info->name;
    rec.artifact_sha256 = info->sha256;
    rec.artifact_size = info->size;
    rec.as_name = request.as_name.empty() ? base_name(info->name) : request.as_name;
    rec.kind = request.kind;
    rec.reboot = request.reboot;
    rec.origin = request.origin;
    rec.state = JobState::queued;
    for (auto& name : names) {
      JobTarget t;
      t.device = std::move(name);
      t.total = info->size;
      rec.targets.push_back(std::move(t));
    }
    auto created = store_.create_job(std::move(rec));
    if (!created) return tl::unexpected(created.error());

    auto job = std::make_unique<Job>();
    job->rec = *created;
    job->runs.resize(job->rec.targets.size());
    job->artifact_verified = true;
    job->verified_mtime_ns = info->mtime_ns;
    job->verified_path = info->path;
    const std::int64_t id = job->rec.id;
    Job& j = *job;
    jobs_.emplace(id, std::move(job));

    spdlog::info("job {}: {} ({} bytes, sha256 {}) to {} device(s) as '{}'", id, j.rec.artifact, j.rec.artifact_size,
                 short_hash(j.rec.artifact_sha256), j.rec.targets.size(), j.rec.as_name);
    audit("job.created", id, std::nullopt,
          fmt::format("push {} to {} device(s) as {}", j.rec.artifact, j.rec.targets.size(), j.rec.as_name),
          {{"artifact", j.rec.artifact},
           {"sha256", j.rec.artifact_sha256},
           {"size", j.rec.artifact_size},
           {"as", j.rec.as_name},
           {"kind", j.rec.kind},
           {"reboot", j.rec.reboot},
           {"origin", j.rec.origin},
           {"devices", j.rec.targets.size()}});
    events_.publish("job.created", dump(job_summary(j.rec)));

    for (std::size_t i = 0; i < j.runs.size(); ++i) {
      j.runs[i].max_attempts = attempts_allowed(0);
      j.runs[i].phase = TargetRun::Phase::queued;
      queue_.emplace_back(id, i);
    }
    pump();
    return current(id);
  }

  Result<JobRecord> cancel(std::int64_t id) override {
    Job* job = find(id);
    if (job == nullptr) {
      auto stored = store_.get_job(id);
      if (!stored) return tl::unexpected(stored.error());
      if (!*stored) return make_error(ErrorCode::not_found, fmt::format("job {} does not exist", id));
      JobRecord rec = std::move(**stored);
      if (rec.state == JobState::canceled) return rec;
      if (is_final(rec.state)) {
        return make_error(ErrorCode::conflict,
                          fmt::format("job {} has already finished ({})", id, to_string(rec.state)));
      }
      // Unfinished but not loaded (recover() not called yet): recover() will end it as canceled.
      rec.cancel_requested = true;
      if (auto r = store_.update_job(rec); !r) return tl::unexpected(r.error());
      return rec;
    }
    if (job->rec.cancel_requested) return job->rec;

    job->rec.cancel_requested = true;
    persist_job(*job);
    spdlog::info("job {}: cancel requested", id);
    audit("job.cancel", id, std::nullopt, "cancel requested", json::object());
    events_.publish("job.updated", dump(job_summary(job->rec)));
    for (std::size_t i = 0; i < job->runs.size(); ++i) {
      auto& rt = job->runs[i];
      switch (rt.phase) {
        case TargetRun::Phase::queued:
        case TargetRun::Phase::backoff:
          finish_target(*job, i, TargetState::canceled, Error(ErrorCode::canceled, "canceled by the user"), nullptr);
          break;
        case TargetRun::Phase::transferring:
          rt.cancel_requested = true;
          if (rt.cancel) rt.cancel();  // the channel reports back later, with CANCELED
          break;
        case TargetRun::Phase::done:
          break;
      }
    }
    std::erase_if(queue_, [id](const auto& entry) { return entry.first == id; });  // nothing of it is queued now
    maybe_finish_job(id);
    pump();
    return current(id);
  }

  Result<std::optional<JobRecord>> get(std::int64_t id) override {
    if (const Job* job = find(id)) return std::optional<JobRecord>(job->rec);
    return store_.get_job(id);
  }

  Result<std::vector<JobRecord>> list(std::int64_t before_id, int limit) override {
    auto jobs = store_.list_jobs(before_id, limit);
    if (!jobs) return jobs;
    for (auto& j : *jobs) {
      if (const Job* live = find(j.id)) j = live->rec;
    }
    return jobs;
  }

  void probe(const std::string& device, std::function<void(Result<ProbeResult>)> done) override {
    auto dev = store_.get_device(device);
    if (!dev || !*dev) {
      Error e =
          !dev ? dev.error() : Error(ErrorCode::not_found, fmt::format("device '{}' is not registered", device));
      asio::post(io_, [done = std::move(done), e = std::move(e)] { done(tl::unexpected(e)); });
      return;
    }
    if ((*dev)->protocol != "otter") {
      // A stock device has no side-effect-free query (the original receiver would even take a probe for a file and
      // stop): it is never contacted outside a job.
      Error e(ErrorCode::invalid_argument,
              fmt::format("a {} device cannot be probed (no harmless query in its protocol); deploy to it instead",
                          (*dev)->protocol));
      asio::post(io_, [done = std::move(done), e = std::move(e)] { done(tl::unexpected(e)); });
      return;
    }
    std::weak_ptr<char> alive = alive_;
    channel_.probe((*dev)->address, (*dev)->key,
                   [this, alive, name = device, done = std::move(done)](ProbeResult pr) {
                     if (!alive.expired()) {
                       if (auto r = store_.record_device_contact(name, pr.online, std::nullopt); !r) {
                         spdlog::warn("device {}: recording contact: {}", name, r.error().to_string());
                       }
                       json data = {{"device", name}, {"online", pr.online}};
                       if (pr.online && !pr.error) {
                         data["device_id"] = pr.device_id;
                         data["fw_state"] = pr.fw_state;
                       }
                       events_.publish("device.updated", dump(data));
                     }
                     done(std::move(pr));
                   });
  }

  Result<void> recover() override {
    auto unfinished = store_.unfinished_jobs();
    if (!unfinished) return tl::unexpected(unfinished.error());
    for (auto& rec : *unfinished) {
      if (jobs_.count(rec.id) != 0) continue;
      auto job = std::make_unique<Job>();
      job->rec = std::move(rec);
      job->runs.resize(job->rec.targets.size());
      const std::int64_t id = job->rec.id;
      Job& j = *job;
      jobs_.emplace(id, std::move(job));
      std::size_t pending = 0;
      for (std::size_t i = 0; i < j.runs.size(); ++i) {
        JobTarget& t = j.rec.targets[i];
        TargetRun& rt = j.runs[i];
        rt.max_attempts = attempts_allowed(t.attempts);
        if (is_final(t.state)) continue;
        if (j.rec.cancel_requested) {
          finish_target(j, i, TargetState::canceled,
                        Error(ErrorCode::canceled, "canceled by the user (before the server restarted)"), nullptr);
          continue;
        }
        if (t.state != TargetState::queued) {
          t.state = TargetState::queued;
          persist_target(j, i);
        }
        rt.phase = TargetRun::Phase::queued;
        queue_.emplace_back(id, i);
        ++pending;
      }
      spdlog::info("job {}: recovered, {} target(s) to go", id, pending);
      audit("job.recovered", id, std::nullopt, fmt::format("resumed after a restart: {} target(s) to go", pending),
            {{"pending", pending}});
      events_.publish("job.updated", dump(job_summary(j.rec)));
      maybe_finish_job(id);
    }
    pump();
    return {};
  }

  [[nodiscard]] std::size_t active_transfers() const override { return running_; }

 private:
  Job* find(std::int64_t id) {
    const auto it = jobs_.find(id);
    return it == jobs_.end() ? nullptr : it->second.get();
  }

  Result<JobRecord> current(std::int64_t id) {
    if (const Job* job = find(id)) return job->rec;
    auto stored = store_.get_job(id);
    if (!stored) return tl::unexpected(stored.error());
    if (!*stored) return make_error(ErrorCode::not_found, fmt::format("job {} does not exist", id));
    return std::move(**stored);
  }

  /// Attempts a target may make in this server run: 1 + retries beyond those it already made. A target resumed after
  /// a restart gets a fresh budget: the attempt the restart interrupted was not the device's fault, and the device
  /// may still hold that connection for a while (BUSY) until it notices it is gone.
  [[nodiscard]] int attempts_allowed(int already) const { return already + static_cast<int>(cfg_.retries) + 1; }

  std::chrono::milliseconds backoff(int failed_attempts) {
    const double base = static_cast<double>(std::max<std::int64_t>(cfg_.retry_base.count(), 1));
    const double cap = std::max(base, static_cast<double>(kMaxBackoff.count()));
    const double d = std::min(cap, base * std::pow(2.0, std::clamp(failed_attempts - 1, 0, 30)));
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    return std::chrono::milliseconds(std::max<std::int64_t>(1, std::llround(d * jitter(rng_))));
  }

  // --- scheduling -------------------------------------------------------------------------------------------------

  void pump() {
    if (pumping_) return;  // start_attempt → finish_target → ... → pump(): the outer loop continues
    pumping_ = true;
    const std::size_t limit = std::max(1u, cfg_.concurrency);
    while (running_ < limit && !queue_.empty()) {
      const auto [id, idx] = queue_.front();
      queue_.pop_front();
      Job* job = find(id);
      if (job == nullptr || job->runs[idx].phase != TargetRun::Phase::queued) continue;  // canceled meanwhile
      start_attempt(*job, idx);
    }
    pumping_ = false;
  }

  /// Starts one attempt of a queued target, or ends the target when it cannot run (device or artifact gone).
  void start_attempt(Job& job, std::size_t idx) {
    JobTarget& t = job.rec.targets[idx];
    TargetRun& rt = job.runs[idx];
    const std::int64_t id = job.rec.id;

    auto dev = store_.get_device(t.device);
    std::optional<Error> cannot;
    if (!dev) {
      cannot = dev.error().with_context(fmt::format("looking up device '{}'", t.device));
    } else if (!*dev) {
      cannot = Error(ErrorCode::not_found, fmt::format("device '{}' is no longer registered", t.device));
    }
    std::string path;
    if (!cannot) {
      auto checked = check_artifact(job);
      if (checked) {
        path = std::move(*checked);
      } else {
        cannot = checked.error();
      }
    }
    if (cannot) {
      spdlog::warn("job {}: {}: {}", id, t.device, cannot->to_string());
      finish_target(job, idx, TargetState::failed, std::move(cannot), nullptr);
      maybe_finish_job(id);
      return;
    }

    const auto now = Clock::now();
    if (job.rec.state == JobState::queued) {
      job.rec.state = JobState::running;
      if (!job.rec.started) job.rec.started = now_rfc3339();
      persist_job(job);
      events_.publish("job.updated", dump(job_summary(job.rec)));
    }
    ++t.attempts;
    t.state = TargetState::running;
    if (!t.started) t.started = now_rfc3339();
    if (!rt.attempted) {
      rt.attempted = true;
      rt.first_start = now;
      if (metrics_ != nullptr) metrics_->transfer_started();
    }
    rt.phase = TargetRun::Phase::transferring;
    rt.attempt_id = ++next_attempt_;
    rt.answered = false;
    rt.rate = 0;
    rt.rate_since = now;
    rt.rate_base = t.bytes;
    rt.last_persist = now;
    rt.persisted_bytes = t.bytes;
    persist_target(job, idx);
    events_.publish("target.updated", dump(target_json(job.rec, t)));
    ++running_;
    spdlog::debug("job {}: {}: attempt {} of {}", id, t.device, t.attempts, rt.max_attempts);

    DeviceChannel::Transfer tr;
    tr.address = (*dev)->address;
    tr.protocol = (*dev)->protocol;
    tr.key = (*dev)->key;
    tr.local_path = std::move(path);
    tr.sha256_hex = job.rec.artifact_sha256;
    tr.size = job.rec.artifact_size;
    tr.name = job.rec.as_name;
    tr.kind = job.rec.kind;
    tr.reboot = job.rec.reboot;
    tr.skip_unchanged = tr.protocol == "otter";  // stock devices cannot tell what they hold

    const std::uint64_t attempt = rt.attempt_id;
    std::weak_ptr<char> alive = alive_;
    auto cancel = channel_.push(
        std::move(tr),
        [this, alive, id, idx, attempt](std::uint64_t acked, std::uint64_t total) {
          if (!alive.expired()) on_progress(id, idx, attempt, acked, total);
        },
        [this, &io = io_, alive, id, idx, attempt](Result<DeviceChannel::Outcome> r) {
          // Always from the io queue, even if a channel completes inside push() (or after the engine is gone:
          // only `io` is used before the alive check).
          asio::post(io, [this, alive, id, idx, attempt, r = std::move(r)]() mutable {
            if (!alive.expired()) on_done(id, idx, attempt, std::move(r));
          });
        });
    // The job is still there (on_done never runs inside push()).
    if (rt.phase == TargetRun::Phase::transferring && rt.attempt_id == attempt) rt.cancel = std::move(cancel);
  }

  /// The artifact's local path if it still is what the job pushes.
  Result<std::string> check_artifact(Job& job) {
    const JobRecord& rec = job.rec;
    auto info = artifacts_.resolve(rec.artifact);
    if (!info) {
      if (info.error().code == ErrorCode::not_found) {
        return make_error(ErrorCode::not_found, fmt::format("artifact '{}' no longer exists", rec.artifact));
      }
      return tl::unexpected(info.error().with_context(fmt::format("artifact '{}'", rec.artifact)));
    }
    if (info->size != rec.artifact_size) {
      return make_error(ErrorCode::conflict,
                        fmt::format("artifact changed since the job was created: '{}' is now {} bytes, the job "
                                    "pushes {} bytes",
                                    rec.artifact, info->size, rec.artifact_size));
    }
    if (job.artifact_verified && info->mtime_ns == job.verified_mtime_ns && info->path == job.verified_path) {
      return info->path;
    }
    auto hashed = artifacts_.resolve_hashed(rec.artifact);  // the file changed on disk (or first use after restart)
    if (!hashed) return tl::unexpected(hashed.error().with_context(fmt::format("artifact '{}'", rec.artifact)));
    if (hashed->sha256 != rec.artifact_sha256 || hashed->size != rec.artifact_size) {
      return make_error(ErrorCode::conflict,
                        fmt::format("artifact changed since the job was created: '{}' now has SHA-256 {}, the job "
                                    "pushes {}",
                                    rec.artifact, short_hash(hashed->sha256), short_hash(rec.artifact_sha256)));
    }
    job.artifact_verified = true;
    job.verified_mtime_ns = hashed->mtime_ns;
    job.verified_path = hashed->path;
    return hashed->path;
  }

  void on_progress(std::int64_t id, std::size_t idx, std::uint64_t attempt, std::uint64_t acked,
                   std::uint64_t total) {
    Job* job = find(id);
    if (job == nullptr) return;
    TargetRun& rt = job->runs[idx];
    if (rt.phase != TargetRun::Phase::transferring || rt.attempt_id != attempt) return;
    JobTarget& t = job->rec.targets[idx];
    const auto now = Clock::now();
    if (!rt.answered) {
      rt.answered = true;  // first report is READY: count the rate from the resume point
      rt.rate_since = now;
      rt.rate_base = acked;
    }
    t.bytes = acked;
    t.total = total;
    const double secs = std::chrono::duration<double>(now - rt.rate_since).count();
    if (secs > 0.05 && acked >= rt.rate_base) {
      rt.rate = static_cast<std::uint64_t>(static_cast<double>(acked - rt.rate_base) / secs);
    }
    if (now - rt.last_persist >= kPersistInterval && t.bytes != rt.persisted_bytes) {
      persist_target(*job, idx);
      rt.last_persist = now;
      rt.persisted_bytes = t.bytes;
    }
    events_.publish_progress(id, t.device, dump(progress_json(id, t, rt.rate)));
  }

  void on_done(std::int64_t id, std::size_t idx, std::uint64_t attempt, Result<DeviceChannel::Outcome> r) {
    Job* job = find(id);
    if (job == nullptr) return;
    TargetRun& rt = job->runs[idx];
    if (rt.phase != TargetRun::Phase::transferring || rt.attempt_id != attempt) return;
    rt.cancel = nullptr;
    --running_;
    const JobTarget& t = job->rec.targets[idx];
    if (r) {
      finish_target(*job, idx, TargetState::succeeded, std::nullopt, &*r);
    } else if (rt.cancel_requested || job->rec.cancel_requested) {
      finish_target(*job, idx, TargetState::canceled, Error(ErrorCode::canceled, "canceled by the user"), nullptr);
    } else if (is_retryable(r.error().code) && t.attempts < rt.max_attempts) {
      schedule_retry(*job, idx, r.error());
    } else {
      finish_target(*job, idx, TargetState::failed, r.error(), nullptr);
    }
    maybe_finish_job(id);
    pump();
  }

  void schedule_retry(Job& job, std::size_t idx, const Error& e) {
    JobTarget& t = job.rec.targets[idx];
    TargetRun& rt = job.runs[idx];
    const std::int64_t id = job.rec.id;
    const auto delay = backoff(t.attempts);
    rt.phase = TargetRun::Phase::backoff;
    t.error_code = e.code;
    t.error_message = e.message;
    persist_target(job, idx);
    if (metrics_ != nullptr) metrics_->transfer_retry();
    spdlog::info("job {}: {}: attempt {} failed: {}; retrying in {} ms", id, t.device, t.attempts, e.to_string(),
                 delay.count());
    audit("target.retry", id, t.device,
          fmt::format("attempt {} failed: {}; retrying in {:.1f} s", t.attempts, e.to_string(),
                      static_cast<double>(delay.count()) / 1000.0),
          {{"attempts", t.attempts}, {"retry_in_ms", delay.count()}, {"error", error_json(e.code, e.message)}});
    json data = target_json(job.rec, t);
    data["retry_in_ms"] = delay.count();
    events_.publish("target.updated", dump(data));

    if (!rt.timer) rt.timer.emplace(io_);
    rt.timer->expires_after(delay);
    std::weak_ptr<char> alive = alive_;
    rt.timer->async_wait([this, alive, id, idx](const boost::system::error_code& ec) {
      if (ec || alive.expired()) return;
      Job* j = find(id);
      if (j == nullptr || j->runs[idx].phase != TargetRun::Phase::backoff) return;
      j->runs[idx].phase = TargetRun::Phase::queued;
      queue_.emplace_front(id, idx);  // a retry goes before targets that have not started yet
      pump();
    });
  }

  /// Puts a target in a final state; does not finish the job (callers call maybe_finish_job afterwards).
  void finish_target(Job& job, std::size_t idx, TargetState state, std::optional<Error> err,
                     const DeviceChannel::Outcome* out) {
    JobTarget& t = job.rec.targets[idx];
    TargetRun& rt = job.runs[idx];
    const std::int64_t id = job.rec.id;
    rt.phase = TargetRun::Phase::done;
    rt.cancel = nullptr;
    if (rt.timer) rt.timer->cancel();
    t.state = state;
    t.finished = now_rfc3339();
    if (err) {
      t.error_code = err->code;
      t.error_message = err->message;
    } else {
      t.error_code.reset();
      t.error_message.clear();
    }
    if (state == TargetState::succeeded) {
      t.bytes = t.total;
      t.unchanged = out != nullptr && out->unchanged;
    }

    const std::uint64_t bytes_sent = out != nullptr ? out->bytes_sent : 0;
    const std::uint64_t resume_offset = out != nullptr ? out->resume_offset : 0;
    // Tried in this run, or in an earlier one (the server was killed during the transfer and recovery ends it now).
    const bool tried = rt.attempted || t.attempts > 0 || state == TargetState::failed;
    // The result and its audit record are saved together: a crash in between must not lose the record.
    std::optional<EventRecord> record;
    if (tried) {
      std::string message(to_string(state));
      if (state == TargetState::succeeded && t.unchanged) message += " (unchanged: the device already had it)";
      if (err && state != TargetState::succeeded) message += ": " + err->to_string();
      const json adata = {
          {"state", to_string(state)}, {"attempts", t.attempts},
          {"bytes_sent", bytes_sent},  {"resume_offset", resume_offset},
          {"unchanged", t.unchanged},  {"error", err ? error_json(err->code, err->message) : json(nullptr)}};
      record = audit_record("target.finished", id, t.device, std::move(message), adata);
    }
    if (auto r = store_.finish_target(id, t, std::move(record)); !r) {
      spdlog::warn("job {}: saving the result of {}: {}", id, t.device, r.error().to_string());
    }
    if (rt.attempted && metrics_ != nullptr) {
      std::string outcome(to_string(state));
      if (state == TargetState::succeeded && t.unchanged) outcome = "unchanged";
      metrics_->transfer_finished(outcome, bytes_sent,
                                  std::chrono::duration<double>(Clock::now() - rt.first_start).count());
    }
    if (rt.attempted) {
      bool online = state == TargetState::succeeded;
      if (state == TargetState::failed && err) online = device_answered(err->code);
      if (state == TargetState::canceled) online = rt.answered;
      json result = {{"job", id}, {"state", to_string(state)}, {"at", *t.finished}};
      if (err && state == TargetState::failed) result["error"] = error_json(err->code, err->message);
      if (auto r = store_.record_device_contact(t.device, online, dump(result)); !r) {
        spdlog::warn("device {}: recording contact: {}", t.device, r.error().to_string());
      }
    }
    if (state == TargetState::succeeded && !t.unchanged) {
      events_.publish("target.progress", dump(progress_json(id, t, rt.rate)));  // the last one, unthrottled
    }
    json data = target_json(job.rec, t);
    data["bytes_sent"] = bytes_sent;
    data["resume_offset"] = resume_offset;
    events_.publish("target.updated", dump(data));
    if (state == TargetState::failed) {
      spdlog::warn("job {}: {} failed after {} attempt(s): {}", id, t.device, t.attempts,
                   err ? err->to_string() : std::string("?"));
    } else {
      spdlog::debug("job {}: {} {}", id, t.device, to_string(state));
    }
  }

  /// Ends the job if every target is final (the Job is then erased: callers must not use it afterwards).
  void maybe_finish_job(std::int64_t id) {
    Job* job = find(id);
    if (job == nullptr) return;
    bool all_succeeded = true;
    for (const auto& t : job->rec.targets) {
      if (!is_final(t.state)) return;
      all_succeeded = all_succeeded && t.state == TargetState::succeeded;
    }
    JobRecord& rec = job->rec;
    rec.state = rec.cancel_requested ? JobState::canceled : all_succeeded ? JobState::succeeded : JobState::failed;
    rec.finished = now_rfc3339();
    persist_job(*job);
    const json summary = job_summary(rec);
    spdlog::info("job {}: {} ({})", id, to_string(rec.state), dump(summary["counts"]));
    audit("job.finished", id, std::nullopt, std::string(to_string(rec.state)),
          {{"state", to_string(rec.state)}, {"counts", summary["counts"]}});
    events_.publish("job.finished", dump(summary));
    jobs_.erase(id);
  }

  // --- persistence and events -------------------------------------------------------------------------------------

  void persist_target(const Job& job, std::size_t idx) {
    if (auto r = store_.update_target(job.rec.id, job.rec.targets[idx]); !r) {
      spdlog::warn("job {}: saving target {}: {}", job.rec.id, job.rec.targets[idx].device, r.error().to_string());
    }
  }

  void persist_job(const Job& job) {
    if (auto r = store_.update_job(job.rec); !r) {
      spdlog::warn("job {}: saving: {}", job.rec.id, r.error().to_string());
    }
  }

  static EventRecord audit_record(std::string type, std::int64_t job_id, std::optional<std::string> device,
                                  std::string message, const json& data) {
    EventRecord e;
    e.type = std::move(type);
    e.job_id = job_id;
    e.device = std::move(device);
    e.message = std::move(message);
    e.data_json = dump(data);
    return e;
  }

  void audit(std::string type, std::int64_t job_id, std::optional<std::string> device, std::string message,
             const json& data) {
    if (auto r = store_.add_event(audit_record(std::move(type), job_id, std::move(device), std::move(message), data));
        !r)
      spdlog::warn("job {}: audit event: {}", job_id, r.error().to_string());
  }

  static json target_json(const JobRecord& job, const JobTarget& t) {
    json out = {{"job", job.id}};
    out.update(views::target_json(t));
    return out;
  }

  static json progress_json(std::int64_t job, const JobTarget& t, std::uint64_t rate) {
    return {{"job", job}, {"device", t.device}, {"bytes", t.bytes}, {"total", t.total}, {"rate", rate}};
  }

  static json job_summary(const JobRecord& j) { return views::job_summary_json(j); }

  asio::io_context& io_;
  ServerConfig cfg_;
  Store& store_;
  ArtifactStore& artifacts_;
  EventBus& events_;
  DeviceChannel& channel_;
  Metrics* metrics_;
  std::mt19937_64 rng_;
  std::shared_ptr<char> alive_ = std::make_shared<char>(0);

  std::map<std::int64_t, std::unique_ptr<Job>> jobs_;  ///< unfinished jobs
  std::deque<std::pair<std::int64_t, std::size_t>> queue_;
  std::size_t running_ = 0;
  std::uint64_t next_attempt_ = 0;
  bool pumping_ = false;
};

}  // namespace

std::unique_ptr<JobEngine> make_job_engine(asio::io_context& io, const ServerConfig& cfg, Store& store,
                                           ArtifactStore& artifacts, EventBus& events, DeviceChannel& channel,
                                           Metrics* metrics) {
  return std::make_unique<Engine>(io, cfg, store, artifacts, events, channel, metrics);
}

}  // namespace otter::server
