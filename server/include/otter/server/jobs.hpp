// otter-server — jobs: push one artifact to many devices, with bounded concurrency, retries (exponential backoff
// with jitter, each retry resuming where the device stopped), cancel, stat-and-skip, and recovery after restarts.
//
// Job state machine:      queued ──► running ──► succeeded | failed | canceled
// Target (per device):    queued ──► running ──► succeeded (maybe unchanged) | failed | canceled
//                                     ▲   │ retryable error, attempts left: wait backoff
//                                     └───┘
// A job is succeeded when every target succeeded, canceled when canceled by a user, failed otherwise.
// Persisted on every state change (and progress at most every second), so a restart continues unfinished work:
// targets that were running are retried (the device resumes from its partial copy).
//
// Behaviour (jobs.cpp):
//  * Concurrency: at most cfg.concurrency transfers in flight over all jobs; targets wait in one FIFO queue. A target
//    waiting for its backoff holds no slot; when the backoff ends it goes to the front of the queue.
//  * Attempts: 1 + cfg.retries per target. Retryable (is_retryable): CONNECT_FAILED, CONNECTION_CLOSED, TIMEOUT,
//    BUSY, IO, STORAGE, HASH_MISMATCH (the device discarded the copy; if the artifact changed on disk the next
//    attempt fails with CONFLICT), INTERNAL. Everything else fails the target at once: AUTH_FAILED, DEVICE_AUTH,
//    BAD_NAME, TOO_LARGE, NO_SPACE, PROTOCOL, UNSUPPORTED_VERSION, UNSUPPORTED_KIND, NOT_OTTER_DEVICE, CONFIG,
//    INVALID_ARGUMENT, NOT_FOUND, CONFLICT, ... While a target waits for a retry it stays `running` and carries the
//    last error (cleared on success).
//  * Backoff before retry n (n = 1, 2, ...): retry_base * 2^(n-1), capped at max(retry_base, 60 s), times a uniform
//    jitter factor in [0.5, 1].
//  * Every attempt first checks the artifact: missing → NOT_FOUND; size or SHA-256 differs from the job's (re-hashed
//    only when the file's mtime changed) → CONFLICT "artifact changed since the job was created". The device is
//    looked up again (address and key may have changed; deleted → NOT_FOUND).
//  * Stat-and-skip: the device already holds the job's SHA-256 under the name → succeeded, unchanged, 0 bytes sent.
//  * Cancel: queued (or backing-off) targets → canceled at once, running ones are canceled through the channel and
//    become canceled when it reports back (a transfer that committed in the meantime stays succeeded). The job ends
//    canceled. Canceling a canceled job returns it; canceling a succeeded / failed job is CONFLICT.
//  * Recovery: targets queued or running → queued; the attempt count is kept and counting goes on, with a fresh
//    budget of 1 + cfg.retries attempts (the interrupted attempt was not the device's fault, and the device may
//    answer BUSY until it notices the old connection is gone). A job with cancel_requested ends canceled.
//  * Live events (EventBus): job.created, job.updated, job.finished (job summary with per-state counts),
//    target.updated (the target; on retry also retry_in_ms; when final also bytes_sent / resume_offset),
//    target.progress {job, device, bytes, total, rate} (throttled; not the last one, when a target succeeds).
//    Audit trail (Store::add_event): job.created, job.cancel, job.recovered, job.finished, target.retry,
//    target.finished (data: state, attempts, bytes_sent, resume_offset, unchanged, error).
//  * Device contact when a target ends after an attempt: online = it answered (success, or an error the device
//    sent), last_result = {job, state, error?, at}.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "otter/common/error.hpp"
#include "otter/server/model.hpp"

namespace boost::asio {
class io_context;
}

namespace otter::server {

class Store;
class ArtifactStore;
class EventBus;
class Metrics;
struct ServerConfig;

struct JobRequest {
  std::string artifact;              ///< path inside the artifact root
  std::vector<std::string> devices;  ///< device names; or
  std::optional<std::string> tag;    ///< every device with this tag
  std::string as_name;               ///< name on the device; default: the artifact's file name
  std::string kind = "file";         ///< "file" | "firmware" | "filesystem" (arduino-ota: a data-partition image)
  bool reboot = false;
  std::string origin = "api";
};

/// A probe is a STAT of a harmless name (nothing is written). `online`: an otter device answered, even if it then
/// refused the request (e.g. AUTH_FAILED with a wrong key: `error` says so); false when it could not be reached.
struct ProbeResult {
  bool online = false;
  std::string device_id;
  std::uint16_t caps = 0;
  std::string fw_state;
  std::uint64_t max_size = 0;
  std::uint64_t free = 0;
  std::optional<Error> error;
};

/// Pushes to devices. Implemented per device protocol ("otter" now; "arduino-ota", "webrepl", "legacy", MQTT later).
/// Runs on the server's io thread; completion callbacks are invoked there.
class DeviceChannel {
 public:
  virtual ~DeviceChannel() = default;
  struct Transfer {
    std::string address;             ///< host:port
    std::string protocol = "otter";  ///< the device's: otter | arduino-ota | webrepl | legacy (adapters.hpp)
    std::string key;                 ///< otter: the pre-shared key; arduino-ota / webrepl: the password
    std::string local_path;
    std::string sha256_hex;
    std::uint64_t size = 0;
    std::string name;  ///< on the device
    std::string kind;
    bool reboot = false;
    bool skip_unchanged = true;
  };
  struct Outcome {
    bool unchanged = false;
    std::uint64_t bytes_sent = 0;
    std::uint64_t resume_offset = 0;
    std::string device_id;
  };
  using Progress = std::function<void(std::uint64_t acked, std::uint64_t total)>;
  using Done = std::function<void(Result<Outcome>)>;
  /// Starts a transfer; returns a cancel function (idempotent; `done` is still called, with CANCELED).
  virtual std::function<void()> push(Transfer t, Progress progress, Done done) = 0;
  virtual void probe(std::string address, std::string key, std::function<void(ProbeResult)> done) = 0;
};

class JobEngine {
 public:
  virtual ~JobEngine() = default;
  /// Validates (artifact resolved in the root: NOT_FOUND / FORBIDDEN / INVALID_ARGUMENT; devices exist:
  /// NOT_FOUND; a tag with no devices: INVALID_ARGUMENT), records the job and starts it.
  virtual Result<JobRecord> submit(JobRequest request) = 0;
  virtual Result<JobRecord> cancel(std::int64_t id) = 0;
  /// Current state including live progress.
  virtual Result<std::optional<JobRecord>> get(std::int64_t id) = 0;
  virtual Result<std::vector<JobRecord>> list(std::int64_t before_id, int limit) = 0;
  virtual void probe(const std::string& device, std::function<void(Result<ProbeResult>)> done) = 0;
  /// Resumes unfinished jobs from the store (call once at start).
  virtual Result<void> recover() = 0;
  [[nodiscard]] virtual std::size_t active_transfers() const = 0;
};

/// True if a target that failed with `code` is tried again (attempts left).
[[nodiscard]] bool is_retryable(ErrorCode code) noexcept;

/// `io` is the server's io_context (only forward-declared here: Asio stays in the .cpp files). Everything (including
/// the store) is used on the thread running `io`. `metrics` is optional. Destroying the engine abandons running
/// transfers (canceled on the wire, nothing persisted: like a crash, recover() continues them).
std::unique_ptr<JobEngine> make_job_engine(boost::asio::io_context& io, const ServerConfig& cfg, Store& store,
                                           ArtifactStore& artifacts, EventBus& events, DeviceChannel& channel,
                                           Metrics* metrics = nullptr);
/// The otter protocol channel (common/push_client_asio.hpp).
std::unique_ptr<DeviceChannel> make_otter_channel(boost::asio::io_context& io, const ServerConfig& cfg);

}  // namespace otter::server
