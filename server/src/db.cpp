#include "otter/server/db.hpp"

#include <sqlite3.h>

#include <utility>

namespace otter::server::db {
namespace {

sqlite3* h(void* p) { return static_cast<sqlite3*>(p); }
sqlite3_stmt* st(void* p) { return static_cast<sqlite3_stmt*>(p); }

tl::unexpected<Error> sql_error(void* db, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db != nullptr ? sqlite3_errmsg(h(db)) : "out of memory";
  return make_error(ErrorCode::io, std::move(msg));
}

}  // namespace

Result<Database> Database::open(const std::string& path, int busy_timeout_ms) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  Database db(raw);
  if (rc != SQLITE_OK) return sql_error(raw, "open " + path);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  sqlite3_extended_result_codes(raw, 1);
  if (path != ":memory:") {
    if (auto r = db.exec("PRAGMA journal_mode=WAL;"); !r) return tl::unexpected(r.error());
  }
  if (auto r = db.exec("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;"); !r) return tl::unexpected(r.error());
  return db;
}

Database::Database(void* handle)
    : handle_(handle), cache_(std::make_unique<std::unordered_map<std::string, Cached>>()) {}

Database::Database(Database&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)), cache_(std::move(other.cache_)) {}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    close();
    handle_ = std::exchange(other.handle_, nullptr);
    cache_ = std::move(other.cache_);
  }
  return *this;
}

Database::~Database() { close(); }

void Database::close() {
  if (cache_) {
    for (auto& [sql, c] : *cache_) sqlite3_finalize(st(c.stmt));
    cache_->clear();
  }
  if (handle_ != nullptr) sqlite3_close_v2(h(handle_));  // a statement still alive keeps it open until finalized
  handle_ = nullptr;
}

Result<void> Database::exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  if (sqlite3_exec(h(handle_), s.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    return make_error(ErrorCode::io, "sql: " + msg);
  }
  return {};
}

Result<Statement> Database::prepare(std::string_view sql) {
  // Compiling is most of the cost of a small query: keep one compiled copy of each statement text.
  auto it = cache_->find(std::string(sql));
  if (it != cache_->end() && !it->second.in_use) {
    it->second.in_use = true;
    return Statement(it->second.stmt, handle_, &it->second.in_use);
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(h(handle_), sql.data(), static_cast<int>(sql.size()), &stmt, nullptr) != SQLITE_OK)
    return sql_error(handle_, "prepare");
  if (it != cache_->end() || stmt == nullptr) return Statement(stmt, handle_);  // in use (nested), or empty SQL
  auto [ins, added] = cache_->emplace(std::string(sql), Cached{stmt, true});
  return Statement(stmt, handle_, &ins->second.in_use);
}

std::int64_t Database::last_insert_id() const { return sqlite3_last_insert_rowid(h(handle_)); }
int Database::changes() const { return sqlite3_changes(h(handle_)); }

Result<bool> Database::integrity_ok() {
  auto stmt = prepare("PRAGMA integrity_check;");
  if (!stmt) return tl::unexpected(stmt.error());
  auto row = stmt->step();
  if (!row) return tl::unexpected(row.error());
  return *row && stmt->get_text(0) == "ok";
}

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)),
      db_(std::exchange(other.db_, nullptr)),
      in_use_(std::exchange(other.in_use_, nullptr)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    release();
    stmt_ = std::exchange(other.stmt_, nullptr);
    db_ = std::exchange(other.db_, nullptr);
    in_use_ = std::exchange(other.in_use_, nullptr);
  }
  return *this;
}

Statement::~Statement() { release(); }

void Statement::release() {
  if (stmt_ == nullptr) return;
  if (in_use_ != nullptr) {  // back to the cache, clean for the next user
    sqlite3_reset(st(stmt_));
    sqlite3_clear_bindings(st(stmt_));
    *in_use_ = false;
  } else {
    sqlite3_finalize(st(stmt_));
  }
  stmt_ = nullptr;
  in_use_ = nullptr;
}

Statement& Statement::bind(int index, std::int64_t value) {
  sqlite3_bind_int64(st(stmt_), index, value);
  return *this;
}
Statement& Statement::bind(int index, double value) {
  sqlite3_bind_double(st(stmt_), index, value);
  return *this;
}
Statement& Statement::bind(int index, std::string_view value) {
  sqlite3_bind_text(st(stmt_), index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::bind_null(int index) {
  sqlite3_bind_null(st(stmt_), index);
  return *this;
}

Result<bool> Statement::step() {
  const int rc = sqlite3_step(st(stmt_));
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return sql_error(db_, "step");
}

Result<void> Statement::run() {
  for (;;) {
    auto r = step();
    if (!r) {
      reset();
      return tl::unexpected(r.error());
    }
    if (!*r) break;
  }
  reset();
  return {};
}

void Statement::reset() {
  sqlite3_reset(st(stmt_));
  sqlite3_clear_bindings(st(stmt_));
}

bool Statement::is_null(int col) const { return sqlite3_column_type(st(stmt_), col) == SQLITE_NULL; }
std::int64_t Statement::get_int(int col) const { return sqlite3_column_int64(st(stmt_), col); }
double Statement::get_double(int col) const { return sqlite3_column_double(st(stmt_), col); }
std::string Statement::get_text(int col) const {
  const auto* p = sqlite3_column_text(st(stmt_), col);
  const int n = sqlite3_column_bytes(st(stmt_), col);
  return p != nullptr ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
}
std::optional<std::string> Statement::get_opt_text(int col) const {
  if (is_null(col)) return std::nullopt;
  return get_text(col);
}
std::optional<std::int64_t> Statement::get_opt_int(int col) const {
  if (is_null(col)) return std::nullopt;
  return get_int(col);
}

Result<Transaction> Transaction::begin(Database& db) {
  if (auto r = db.exec("BEGIN IMMEDIATE;"); !r) return tl::unexpected(r.error());
  return Transaction(&db);
}

Transaction::Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}

Transaction::~Transaction() {
  if (db_ != nullptr) (void)db_->exec("ROLLBACK;");
}

Result<void> Transaction::commit() {
  auto r = db_->exec("COMMIT;");
  if (r) db_ = nullptr;
  return r;
}

}  // namespace otter::server::db
