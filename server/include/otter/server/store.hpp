// otter-server — the persistent store interface. SqliteStore is the embedded default; a PostgreSQL store (several
// server instances) implements the same interface.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "otter/common/error.hpp"
#include "otter/server/model.hpp"

namespace otter::server {

class Store {
 public:
  virtual ~Store() = default;

  // Devices. create → CONFLICT if the name exists; update/delete → NOT_FOUND if absent.
  virtual Result<DeviceRecord> create_device(DeviceRecord device) = 0;
  virtual Result<std::vector<DeviceRecord>> list_devices() = 0;
  virtual Result<std::optional<DeviceRecord>> get_device(std::string_view name) = 0;
  virtual Result<DeviceRecord> update_device(const DeviceRecord& device) = 0;
  virtual Result<void> delete_device(std::string_view name) = 0;
  virtual Result<void> record_device_contact(std::string_view name, bool online,
                                             const std::optional<std::string>& last_result_json) = 0;
  /// Changes (grows) after every successful device write through this store, so that readers can cache what they
  /// derive from the device list.
  [[nodiscard]] virtual std::uint64_t devices_version() const = 0;

  // Jobs with their per-device targets (created together, in one transaction).
  virtual Result<JobRecord> create_job(JobRecord job) = 0;
  virtual Result<std::optional<JobRecord>> get_job(std::int64_t id) = 0;
  /// Newest first; `before_id` 0 = from the newest.
  virtual Result<std::vector<JobRecord>> list_jobs(std::int64_t before_id, int limit) = 0;
  virtual Result<std::vector<JobRecord>> unfinished_jobs() = 0;
  virtual Result<void> update_job(const JobRecord& job) = 0;  ///< state, started, finished, cancel_requested
  virtual Result<void> update_target(std::int64_t job_id, const JobTarget& target) = 0;
  /// A target's final result and its audit record (if any), in one transaction: a crash leaves both or neither.
  virtual Result<void> finish_target(std::int64_t job_id, const JobTarget& target,
                                     std::optional<EventRecord> audit) = 0;

  // Audit trail.
  virtual Result<std::int64_t> add_event(EventRecord event) = 0;
  virtual Result<std::vector<EventRecord>> list_events(std::int64_t after_id, int limit) = 0;

  /// PRAGMA integrity_check (or the backend's equivalent).
  virtual Result<bool> check_integrity() = 0;
};

/// The embedded store: SQLite in WAL mode at `path` (created with its parent directory, mode 0600).
Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path);

}  // namespace otter::server
