// SPDX-License-Identifier: BSL-1.0
// notes_db: SQLite connections in a pool, one thread per connection at a time.
#include "notes_db.hpp"

#include <sqlite3.h>

#include <stdlib.h>  // mkdtemp

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace http_service {

namespace {

[[noreturn]] void fail(sqlite3* db, const char* what) {
  throw std::runtime_error(std::string("sqlite: ") + what + ": " +
                           (db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
}

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "?";
    sqlite3_free(err);
    throw std::runtime_error(std::string("sqlite: ") + sql + ": " + msg);
  }
}

void bind_text(sqlite3* db, sqlite3_stmt* s, int i, std::string_view v) {
  if (sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) !=
      SQLITE_OK) {
    fail(db, "bind");
  }
}

std::string column_text(sqlite3_stmt* s, int i) {
  const auto* p = sqlite3_column_text(s, i);
  return p != nullptr ? std::string(reinterpret_cast<const char*>(p),
                                    static_cast<std::size_t>(sqlite3_column_bytes(s, i)))
                      : std::string();
}

/// Resets a statement (and drops its bindings) however the call that used it ends.
struct statement_use {
  sqlite3_stmt* s;
  ~statement_use() {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
};

}  // namespace

/// One SQLite connection and its prepared statements: used by one thread at a time.
struct notes_db::connection {
  sqlite3* db = nullptr;
  sqlite3_stmt* insert = nullptr;
  sqlite3_stmt* list = nullptr;
  sqlite3_stmt* count = nullptr;
  sqlite3_stmt* count_all = nullptr;

  explicit connection(const std::string& path) {
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
      std::string msg = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
      sqlite3_close(db);
      throw std::runtime_error("sqlite: cannot open " + path + ": " + msg);
    }
    try {
      sqlite3_busy_timeout(db, 5000);
      exec(db, "PRAGMA journal_mode=WAL");
      exec(db, "PRAGMA synchronous=NORMAL");
      exec(db,
           "CREATE TABLE IF NOT EXISTS notes ("
           " id INTEGER PRIMARY KEY,"
           " user TEXT NOT NULL,"
           " text TEXT NOT NULL,"
           " request_id TEXT NOT NULL,"
           " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));"
           "CREATE INDEX IF NOT EXISTS notes_by_user ON notes(user, id)");
      prepare(insert, "INSERT INTO notes(user, text, request_id) VALUES (?1, ?2, ?3)");
      prepare(list,
              "SELECT id, user, text, request_id, created_at FROM notes WHERE user = ?1"
              " AND id < ?3 ORDER BY id DESC LIMIT ?2");
      prepare(count, "SELECT count(*) FROM notes WHERE user = ?1");
      prepare(count_all, "SELECT count(*) FROM notes");
    } catch (...) {
      close();
      throw;
    }
  }
  ~connection() { close(); }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  void prepare(sqlite3_stmt*& s, const char* sql) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) {
      fail(db, "prepare");
    }
  }
  void close() noexcept {
    for (sqlite3_stmt* s : {insert, list, count, count_all}) sqlite3_finalize(s);
    sqlite3_close(db);  // the last connection to close checkpoints the WAL into the file
    db = nullptr;
  }
};

/// A checked-out connection, given back on every path out of the call.
class notes_db::lease {
 public:
  explicit lease(notes_db& owner) : owner_(owner), c_(owner.acquire()) {}
  ~lease() { owner_.give_back(std::move(c_)); }
  lease(const lease&) = delete;
  lease& operator=(const lease&) = delete;
  connection* operator->() const noexcept { return c_.get(); }

 private:
  notes_db& owner_;
  std::unique_ptr<connection> c_;
};

notes_db::notes_db(std::string path, std::size_t pool_size)
    : path_(std::move(path)), pool_size_(pool_size == 0 ? 1 : pool_size) {
  // Opens the first connection now: creates the file and the schema, and fails early.
  idle_.push_back(std::make_unique<connection>(path_));
  open_ = 1;
}

notes_db::~notes_db() = default;

std::unique_ptr<notes_db::connection> notes_db::acquire() {
  std::unique_lock lock(mutex_);
  available_.wait(lock, [&] { return !idle_.empty() || open_ < pool_size_; });
  if (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    return c;
  }
  ++open_;  // reserve the slot, open outside the lock
  lock.unlock();
  try {
    return std::make_unique<connection>(path_);
  } catch (...) {
    lock.lock();
    --open_;
    available_.notify_one();
    throw;
  }
}

void notes_db::give_back(std::unique_ptr<connection> c) noexcept {
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(c));
  }
  available_.notify_one();
}

std::int64_t notes_db::add(std::string_view user, std::string_view text,
                           std::string_view request_id) {
  lease c(*this);
  statement_use use{c->insert};
  bind_text(c->db, c->insert, 1, user);
  bind_text(c->db, c->insert, 2, text);
  bind_text(c->db, c->insert, 3, request_id);
  if (sqlite3_step(c->insert) != SQLITE_DONE) fail(c->db, "insert");
  return sqlite3_last_insert_rowid(c->db);  // this connection's, and only this thread uses it
}

std::vector<notes_db::note> notes_db::list(std::string_view user, std::size_t limit) {
  std::vector<note> out;
  list_each(user, INT64_MAX, limit, [&out](const note& n) {
    out.push_back(n);
    return true;
  });
  return out;
}

void notes_db::list_each(std::string_view user, std::int64_t before, std::size_t limit,
                         const std::function<bool(const note&)>& each) {
  lease c(*this);
  statement_use use{c->list};
  bind_text(c->db, c->list, 1, user);
  sqlite3_bind_int64(c->list, 2, static_cast<sqlite3_int64>(limit));
  sqlite3_bind_int64(c->list, 3, before);
  int rc;
  while ((rc = sqlite3_step(c->list)) == SQLITE_ROW) {
    const note n{sqlite3_column_int64(c->list, 0), column_text(c->list, 1), column_text(c->list, 2),
                 column_text(c->list, 3), column_text(c->list, 4)};
    if (!each(n)) return;
  }
  if (rc != SQLITE_DONE) fail(c->db, "list");
}

std::int64_t notes_db::count(std::string_view user) {
  lease c(*this);
  statement_use use{c->count};
  bind_text(c->db, c->count, 1, user);
  if (sqlite3_step(c->count) != SQLITE_ROW) fail(c->db, "count");
  return sqlite3_column_int64(c->count, 0);
}

std::int64_t notes_db::count_all() {
  lease c(*this);
  statement_use use{c->count_all};
  if (sqlite3_step(c->count_all) != SQLITE_ROW) fail(c->db, "count");
  return sqlite3_column_int64(c->count_all, 0);
}

db_location::db_location(std::string path, std::string_view program) : file_(std::move(path)) {
  if (!file_.empty()) return;
  namespace fs = std::filesystem;
  std::string dir =
      (fs::temp_directory_path() / ("baton-" + std::string(program) + "-XXXXXX")).string();
  if (::mkdtemp(dir.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp " + dir);
  }
  temp_dir_ = dir;
  file_ = (fs::path(dir) / "notes.db").string();
}

db_location::~db_location() {
  if (temp_dir_.empty()) return;
  std::error_code ec;  // a directory that cannot be removed is left behind, silently
  std::filesystem::remove_all(temp_dir_, ec);
}

}  // namespace http_service
