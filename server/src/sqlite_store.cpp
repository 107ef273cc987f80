// The embedded SQLite store. All SQL of the server lives here.
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <utility>

#include <nlohmann/json.hpp>

#include "otter/server/db.hpp"
#include "otter/server/store.hpp"

namespace otter::server {
namespace {

using db::Database;
using db::Statement;
using db::Transaction;

constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS devices (
  id          INTEGER PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  address     TEXT NOT NULL,
  protocol    TEXT NOT NULL DEFAULT 'otter',
  key         TEXT NOT NULL,
  tags        TEXT NOT NULL DEFAULT '[]',
  created     TEXT NOT NULL,
  updated     TEXT NOT NULL,
  last_seen   TEXT,
  last_result TEXT,
  online      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS jobs (
  id               INTEGER PRIMARY KEY,
  artifact         TEXT NOT NULL,
  artifact_sha256  TEXT NOT NULL,
  artifact_size    INTEGER NOT NULL,
  as_name          TEXT NOT NULL,
  kind             TEXT NOT NULL DEFAULT 'file',
  reboot           INTEGER NOT NULL DEFAULT 0,
  state            TEXT NOT NULL,
  origin           TEXT NOT NULL DEFAULT 'api',
  created          TEXT NOT NULL,
  started          TEXT,
  finished         TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs(state) WHERE state IN ('queued', 'running');
CREATE TABLE IF NOT EXISTS job_targets (
  job_id        INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  device        TEXT NOT NULL,
  state         TEXT NOT NULL,
  bytes         INTEGER NOT NULL DEFAULT 0,
  total         INTEGER NOT NULL DEFAULT 0,
  attempts      INTEGER NOT NULL DEFAULT 0,
  unchanged     INTEGER NOT NULL DEFAULT 0,
  error_code    INTEGER,
  error_message TEXT NOT NULL DEFAULT '',
  started       TEXT,
  finished      TEXT,
  PRIMARY KEY (job_id, device)
);
CREATE TABLE IF NOT EXISTS events (
  id      INTEGER PRIMARY KEY,
  ts      TEXT NOT NULL,
  type    TEXT NOT NULL,
  job_id  INTEGER,
  device  TEXT,
  message TEXT NOT NULL DEFAULT '',
  data    TEXT NOT NULL DEFAULT '{}'
);
)sql";

constexpr const char* kDeviceCols =
    "id, name, address, protocol, key, tags, created, updated, last_seen, last_result, online";
constexpr const char* kJobCols =
    "id, artifact, artifact_sha256, artifact_size, as_name, kind, reboot, state, origin, created, started, finished, "
    "cancel_requested";

std::string tags_to_json(const std::vector<std::string>& tags) { return nlohmann::json(tags).dump(); }

std::vector<std::string> tags_from_json(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  std::vector<std::string> out;
  if (j.is_array()) {
    for (const auto& t : j) {
      if (t.is_string()) out.push_back(t.get<std::string>());
    }
  }
  return out;
}

DeviceRecord read_device(const Statement& s) {
  DeviceRecord d;
  d.id = s.get_int(0);
  d.name = s.get_text(1);
  d.address = s.get_text(2);
  d.protocol = s.get_text(3);
  d.key = s.get_text(4);
  d.tags = tags_from_json(s.get_text(5));
  d.created = s.get_text(6);
  d.updated = s.get_text(7);
  d.last_seen = s.get_opt_text(8);
  d.last_result_json = s.get_opt_text(9);
  d.online = s.get_int(10) != 0;
  return d;
}

JobRecord read_job(const Statement& s) {
  JobRecord j;
  j.id = s.get_int(0);
  j.artifact = s.get_text(1);
  j.artifact_sha256 = s.get_text(2);
  j.artifact_size = static_cast<std::uint64_t>(s.get_int(3));
  j.as_name = s.get_text(4);
  j.kind = s.get_text(5);
  j.reboot = s.get_int(6) != 0;
  j.state = job_state_from_string(s.get_text(7)).value_or(JobState::failed);
  j.origin = s.get_text(8);
  j.created = s.get_text(9);
  j.started = s.get_opt_text(10);
  j.finished = s.get_opt_text(11);
  j.cancel_requested = s.get_int(12) != 0;
  return j;
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(Database db) : db_(std::move(db)) {}

  Result<void> migrate() {
    if (auto r = db_.exec(kSchema); !r) return r;
    return db_.exec("PRAGMA user_version=" + std::to_string(kSchemaVersion) + ";");
  }

  Result<DeviceRecord> create_device(DeviceRecord d) override {
    auto existing = get_device(d.name);
    if (!existing) return tl::unexpected(existing.error());
    if (*existing) return make_error(ErrorCode::conflict, "device '" + d.name + "' already exists");
    d.created = d.updated = now_rfc3339();
    auto s = db_.prepare(
        "INSERT INTO devices(name, address, protocol, key, tags, created, updated) VALUES(?,?,?,?,?,?,?)");
    if (!s) return tl::unexpected(s.error());
    s->bind(1, d.name).bind(2, d.address).bind(3, d.protocol).bind(4, d.key).bind(5, tags_to_json(d.tags));
    s->bind(6, d.created).bind(7, d.updated);
    if (auto r = s->run(); !r) return tl::unexpected(r.error());
    d.id = db_.last_insert_id();
    ++devices_version_;
    return d;
  }

  Result<std::vector<DeviceRecord>> list_devices() override {
    auto s = db_.prepare(std::string("SELECT ") + kDeviceCols + " FROM devices ORDER BY name");
    if (!s) return tl::unexpected(s.error());
    std::vector<DeviceRecord> out;
    for (;;) {
      auto row = s->step();
      if (!row) return tl::unexpected(row.error());
      if (!*row) break;
      out.push_back(read_device(*s));
    }
    return out;
  }

  Result<std::optional<DeviceRecord>> get_device(std::string_view name) override {
    auto s = db_.prepare(std::string("SELECT ") + kDeviceCols + " FROM devices WHERE name = ?");
    if (!s) return tl::unexpected(s.error());
    s->bind(1, name);
    auto row = s->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) return std::optional<DeviceRecord>{};
    return std::optional<DeviceRecord>(read_device(*s));
  }

  Result<DeviceRecord> update_device(const DeviceRecord& d) override {
    auto s = db_.prepare("UPDATE devices SET address=?, protocol=?, key=?, tags=?, updated=? WHERE name=?");
    if (!s) return tl::unexpected(s.error());
    s->bind(1, d.address).bind(2, d.protocol).bind(3, d.key).bind(4, tags_to_json(d.tags));
    s->bind(5, now_rfc3339()).bind(6, d.name);
    if (auto r = s->run(); !r) return tl::unexpected(r.error());
    if (db_.changes() == 0) return make_error(ErrorCode::not_found, "no device named '" + d.name + "'");
    ++devices_version_;
    auto got = get_device(d.name);
    if (!got) return tl::unexpected(got.error());
    return **got;
  }

  Result<void> delete_device(std::string_view name) override {
    auto s = db_.prepare("DELETE FROM devices WHERE name = ?");
    if (!s) return tl::unexpected(s.error());
    s->bind(1, name);
    if (auto r = s->run(); !r) return r;
    if (db_.changes() == 0) return make_error(ErrorCode::not_found, "no device named '" + std::string(name) + "'");
    ++devices_version_;
    return {};
  }

  Result<void> record_device_contact(std::string_view name, bool online,
                                     const std::optional<std::string>& last_result_json) override {
    auto s = db_.prepare(
        "UPDATE devices SET online=?, last_seen=CASE WHEN ? THEN ? ELSE last_seen END, "
        "last_result=COALESCE(?, last_result) WHERE name=?");
    if (!s) return tl::unexpected(s.error());
    s->bind(1, online).bind(2, online).bind(3, now_rfc3339()).bind(4, last_result_json).bind(5, name);
    auto r = s->run();
    if (r) ++devices_version_;
    return r;
  }

  [[nodiscard]] std::uint64_t devices_version() const override { return devices_version_.load(); }

  Result<JobRecord> create_job(JobRecord j) override {
    auto tx = Transaction::begin(db_);
    if (!tx) return tl::unexpected(tx.error());
    j.created = now_rfc3339();
    auto s = db_.prepare(
        "INSERT INTO jobs(artifact, artifact_sha256, artifact_size, as_name, kind, reboot, state, origin, created) "
        "VALUES(?,?,?,?,?,?,?,?,?)");
    if (!s) return tl::unexpected(s.error());
    s->bind(1, j.artifact).bind(2, j.artifact_sha256).bind(3, j.artifact_size).bind(4, j.as_name).bind(5, j.kind);
    s->bind(6, j.reboot).bind(7, to_string(j.state)).bind(8, j.origin).bind(9, j.created);
    if (auto r = s->run(); !r) return tl::unexpected(r.error());
    j.id = db_.last_insert_id();
    auto t = db_.prepare("INSERT INTO job_targets(job_id, device, state, total) VALUES(?,?,?,?)");
    if (!t) return tl::unexpected(t.error());
    for (auto& target : j.targets) {
      target.total = j.artifact_size;
      t->bind(1, j.id).bind(2, target.device).bind(3, to_string(target.state)).bind(4, target.total);
      if (auto r = t->run(); !r) return tl::unexpected(r.error());
    }
    if (auto r = tx->commit(); !r) return tl::unexpected(r.error());
    return j;
  }

  Result<void> load_targets(JobRecord& j) {
    auto s = db_.prepare(
        "SELECT device, state, bytes, total, attempts, unchanged, error_code, error_message, started, finished "
        "FROM job_targets WHERE job_id = ? ORDER BY device");
    if (!s) return tl::unexpected(s.error());
    s->bind(1, j.id);
    j.targets.clear();
    for (;;) {
      auto row = s->step();
      if (!row) return tl::unexpected(row.error());
      if (!*row) break;
      JobTarget t;
      t.device = s->get_text(0);
      t.state = job_state_from_string(s->get_text(1)).value_or(JobState::failed);
      t.bytes = static_cast<std::uint64_t>(s->get_int(2));
      t.total = static_cast<std::uint64_t>(s->get_int(3));
      t.attempts = static_cast<int>(s->get_int(4));
      t.unchanged = s->get_int(5) != 0;
      if (auto code = s->get_opt_int(6)) t.error_code = static_cast<ErrorCode>(*code);
      t.error_message = s->get_text(7);
      t.started = s->get_opt_text(8);
      t.finished = s->get_opt_text(9);
      j.targets.push_back(std::move(t));
    }
    return {};
  }

  Result<std::vector<JobRecord>> query_jobs(Statement& s) {
    std::vector<JobRecord> out;
    for (;;) {
      auto row = s.step();
      if (!row) return tl::unexpected(row.error());
      if (!*row) break;
      out.push_back(read_job(s));
    }
    for (auto& j : out) {
      if (auto r = load_targets(j); !r) return tl::unexpected(r.error());
    }
    return out;
  }

  Result<std::optional<JobRecord>> get_job(std::int64_t id) override {
    auto s = db_.prepare(std::string("SELECT ") + kJobCols + " FROM jobs WHERE id = ?");
    if (!s) return tl::unexpected(s.error());
    s->bind(1, id);
    auto jobs = query_jobs(*s);
    if (!jobs) return tl::unexpected(jobs.error());
    if (jobs->empty()) return std::optional<JobRecord>{};
    return std::optional<JobRecord>(std::move(jobs->front()));
  }

  Result<std::vector<JobRecord>> list_jobs(std::int64_t before_id, int limit) override {
    auto s = db_.prepare(std::string("SELECT ") + kJobCols +
                         " FROM jobs WHERE (? = 0 OR id < ?) ORDER BY id DESC LIMIT ?");
    if (!s) return tl::unexpected(s.error());
    s->bind(1, before_id).bind(2, before_id).bind(3, limit);
    return query_jobs(*s);
  }

  Result<std::vector<JobRecord>> unfinished_jobs() override {
    auto s = db_.prepare(std::string("SELECT ") + kJobCols +
                         " FROM jobs WHERE state IN ('queued', 'running') ORDER BY id");
    if (!s) return tl::unexpected(s.error());
    return query_jobs(*s);
  }

  Result<void> update_job(const JobRecord& j) override {
    auto s = db_.prepare("UPDATE jobs SET state=?, started=?, finished=?, cancel_requested=? WHERE id=?");
    if (!s) return tl::unexpected(s.error());
    s->bind(1, to_string(j.state)).bind(2, j.started).bind(3, j.finished).bind(4, j.cancel_requested).bind(5, j.id);
    return s->run();
  }

  Result<void> update_target(std::int64_t job_id, const JobTarget& t) override {
    auto s = db_.prepare(
        "UPDATE job_targets SET state=?, bytes=?, total=?, attempts=?, unchanged=?, error_code=?, error_message=?, "
        "started=?, finished=? WHERE job_id=? AND device=?");
    if (!s) return tl::unexpected(s.error());
    s->bind(1, to_string(t.state)).bind(2, t.bytes).bind(3, t.total).bind(4, t.attempts).bind(5, t.unchanged);
    if (t.error_code) {
      s->bind(6, static_cast<std::int64_t>(*t.error_code));
    } else {
      s->bind_null(6);
    }
    s->bind(7, t.error_message).bind(8, t.started).bind(9, t.finished).bind(10, job_id).bind(11, t.device);
    return s->run();
  }

  Result<void> finish_target(std::int64_t job_id, const JobTarget& t, std::optional<EventRecord> audit) override {
    auto tx = Transaction::begin(db_);
    if (!tx) return tl::unexpected(tx.error());
    if (auto r = update_target(job_id, t); !r) return r;
    if (audit) {
      if (auto r = add_event(std::move(*audit)); !r) return tl::unexpected(r.error());
    }
    return tx->commit();
  }

  Result<std::int64_t> add_event(EventRecord e) override {
    if (e.ts.empty()) e.ts = now_rfc3339();
    auto s = db_.prepare("INSERT INTO events(ts, type, job_id, device, message, data) VALUES(?,?,?,?,?,?)");
    if (!s) return tl::unexpected(s.error());
    s->bind(1, e.ts).bind(2, e.type).bind(3, e.job_id).bind(4, e.device).bind(5, e.message).bind(6, e.data_json);
    if (auto r = s->run(); !r) return tl::unexpected(r.error());
    return db_.last_insert_id();
  }

  Result<std::vector<EventRecord>> list_events(std::int64_t after_id, int limit) override {
    auto s = db_.prepare(
        "SELECT id, ts, type, job_id, device, message, data FROM events WHERE id > ? ORDER BY id LIMIT ?");
    if (!s) return tl::unexpected(s.error());
    s->bind(1, after_id).bind(2, limit);
    std::vector<EventRecord> out;
    for (;;) {
      auto row = s->step();
      if (!row) return tl::unexpected(row.error());
      if (!*row) break;
      EventRecord e;
      e.id = s->get_int(0);
      e.ts = s->get_text(1);
      e.type = s->get_text(2);
      e.job_id = s->get_opt_int(3);
      e.device = s->get_opt_text(4);
      e.message = s->get_text(5);
      e.data_json = s->get_text(6);
      out.push_back(std::move(e));
    }
    return out;
  }

  Result<bool> check_integrity() override { return db_.integrity_ok(); }

 private:
  Database db_;
  std::atomic<std::uint64_t> devices_version_{1};
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path) {
  if (path != ":memory:") {
    std::error_code ec;
    const auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) return make_error(ErrorCode::io, "create " + parent.string() + ": " + ec.message());
  }
  const mode_t old = ::umask(077);  // the database holds device keys
  auto db = Database::open(path);
  ::umask(old);
  if (!db) return tl::unexpected(db.error().with_context("opening store"));
  auto store = std::make_unique<SqliteStore>(std::move(*db));
  if (auto r = store->migrate(); !r) return tl::unexpected(r.error().with_context("migrating store"));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace otter::server
