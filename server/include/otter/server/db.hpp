// otter-server — a small RAII wrapper over the raw SQLite C API. sqlite3 types stay in db.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "otter/common/error.hpp"

namespace otter::server::db {

class Statement;

/// One SQLite connection. WAL journal, busy timeout, foreign keys on. Not thread-safe: use from one thread (the
/// server's single writer path).
class Database {
 public:
  /// Opens (creating if needed) the database file. ":memory:" for an in-memory database.
  static Result<Database> open(const std::string& path, int busy_timeout_ms = 5000);

  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  /// Runs one or more statements without results.
  Result<void> exec(std::string_view sql);
  /// Prepares one statement. Statements are cached per SQL text: preparing the same SQL again reuses the compiled
  /// statement (reset, bindings cleared) unless it is still in use, in which case a private one is compiled.
  Result<Statement> prepare(std::string_view sql);
  [[nodiscard]] std::int64_t last_insert_id() const;
  [[nodiscard]] int changes() const;
  /// PRAGMA integrity_check == "ok".
  Result<bool> integrity_ok();

 private:
  explicit Database(void* handle);
  void close();
  friend class Statement;
  struct Cached {
    void* stmt = nullptr;  // sqlite3_stmt*
    bool in_use = false;
  };
  void* handle_ = nullptr;  // sqlite3*
  // Node-based: entries keep their address when the map grows or the Database moves (Statements point at them).
  std::unique_ptr<std::unordered_map<std::string, Cached>> cache_;
};

/// A prepared statement. Bind parameters are 1-based, columns 0-based (as in SQLite).
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
  Statement& bind(int index, std::uint64_t value) { return bind(index, static_cast<std::int64_t>(value)); }
  Statement& bind(int index, bool value) { return bind(index, static_cast<std::int64_t>(value ? 1 : 0)); }
  Statement& bind(int index, double value);
  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
  Statement& bind(int index, const std::string& value) { return bind(index, std::string_view(value)); }
  Statement& bind_null(int index);
  template <class T>
  Statement& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bind_null(index);
  }

  /// Advances: true = a row is available, false = done. Errors (constraint, busy) come back as STORAGE-class
  /// errors with SQLite's message.
  Result<bool> step();
  /// Runs to completion (for INSERT/UPDATE/DELETE).
  Result<void> run();
  void reset();

  [[nodiscard]] bool is_null(int col) const;
  [[nodiscard]] std::int64_t get_int(int col) const;
  [[nodiscard]] double get_double(int col) const;
  [[nodiscard]] std::string get_text(int col) const;
  [[nodiscard]] std::optional<std::string> get_opt_text(int col) const;
  [[nodiscard]] std::optional<std::int64_t> get_opt_int(int col) const;

 private:
  friend class Database;
  Statement(void* stmt, void* db, bool* cached_in_use = nullptr) : stmt_(stmt), db_(db), in_use_(cached_in_use) {}
  void release();
  void* stmt_ = nullptr;    // sqlite3_stmt*
  void* db_ = nullptr;      // sqlite3* (for error messages)
  bool* in_use_ = nullptr;  // set: the statement belongs to the Database's cache (reset, not finalized, at the end)
};

/// BEGIN IMMEDIATE ... COMMIT; rolls back if not committed.
class Transaction {
 public:
  static Result<Transaction> begin(Database& db);
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  ~Transaction();
  Result<void> commit();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_ = nullptr;
};

}  // namespace otter::server::db
