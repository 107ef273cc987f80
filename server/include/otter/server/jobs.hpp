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
struct ServerConfig;

struct JobRequest {
  std::string artifact;              ///< path inside the artifact root
  std::vector<std::string> devices;  ///< device names; or
  std::optional<std::string> tag;    ///< every device with this tag
  std::string as_name;               ///< name on the device; default: the artifact's file name
  std::string kind = "file";         ///< "file" | "firmware"
  bool reboot = false;
  std::string origin = "api";
};

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
    std::string address;  ///< host:port
    std::string key;
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

/// `io` is the server's io_context (only forward-declared here: Asio stays in the .cpp files).
std::unique_ptr<JobEngine> make_job_engine(boost::asio::io_context& io, const ServerConfig& cfg, Store& store,
                                           ArtifactStore& artifacts, EventBus& events, DeviceChannel& channel);
/// The otter protocol channel (common/push_client_asio.hpp).
std::unique_ptr<DeviceChannel> make_otter_channel(boost::asio::io_context& io, const ServerConfig& cfg);

}  // namespace otter::server
