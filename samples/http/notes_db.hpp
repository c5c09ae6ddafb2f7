// SPDX-License-Identifier: BSL-1.0
// notes_db: the service's SQLite store, with blocking calls meant for baton::to_thread.
#pragma once

// Contract: a SQLite database file holding notes (id, user, text, request id, time).
//   add(), list(), count() block (disk I/O, SQLite locks): call them from baton::to_thread
//   jobs, never on a loop thread. They throw std::runtime_error on an SQLite error.
// Thread-safety: every member may be called from any number of threads at once. SQLite
// connections are opened in multi-thread mode (SQLITE_OPEN_NOMUTEX): one connection must never
// be used by two threads at the same time. A small pool enforces that: each call checks a
// connection out for its whole duration (statements included) and gives it back, so a
// connection is only ever used by one thread at a time, and a call that finds none free while
// `pool_size` are open waits for one. The pool is as large as the to_thread pool, so a job
// normally never waits. Between connections, SQLite's own file locking applies: the database
// is in WAL mode (readers never block the writer), writers take turns, and busy_timeout makes
// a writer wait for the lock instead of failing with SQLITE_BUSY.
// Durability: each add() is its own transaction, committed before it returns; with WAL and
// synchronous=NORMAL a committed note survives the process ending or crashing (a power cut may
// lose the last commits). The service acknowledges a note only after add() returned.

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace http_service {

class notes_db {
 public:
  struct note {
    std::int64_t id = 0;
    std::string user;
    std::string text;
    std::string request_id;  // of the request that stored it
    std::string created_at;  // UTC, ISO 8601
  };

  /// Opens (creates) the file and its schema. Throws std::runtime_error when it cannot.
  notes_db(std::string path, std::size_t pool_size);
  ~notes_db();
  notes_db(const notes_db&) = delete;
  notes_db& operator=(const notes_db&) = delete;

  /// Stores a note; returns its id once the transaction committed.
  std::int64_t add(std::string_view user, std::string_view text, std::string_view request_id);
  /// The user's notes, newest first, at most `limit`.
  std::vector<note> list(std::string_view user, std::size_t limit);
  /// Calls each(note) for the user's notes with an id below `before`, newest first, at most
  /// `limit`, one row in memory at a time; stops early when each() returns false.
  void list_each(std::string_view user, std::int64_t before, std::size_t limit,
                 const std::function<bool(const note&)>& each);
  std::int64_t count(std::string_view user);
  std::int64_t count_all();

  const std::string& path() const noexcept { return path_; }

 private:
  struct connection;
  class lease;

  std::unique_ptr<connection> acquire();
  void give_back(std::unique_ptr<connection> c) noexcept;

  std::string path_;
  std::size_t pool_size_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<connection>> idle_;  // open, not in use
  std::size_t open_ = 0;                           // idle_ plus checked out
};

/// Where a sample process keeps its notes: the given path, or (when it is empty) notes.db in a
/// fresh temporary directory that is removed, with everything in it, when this object goes.
/// Declare it before the notes_db that uses the file, so the database is closed first.
class db_location {
 public:
  /// `program` names the temporary directory (/tmp/baton-<program>-XXXXXX). Throws
  /// std::system_error when that directory cannot be made.
  db_location(std::string path, std::string_view program);
  ~db_location();
  db_location(const db_location&) = delete;
  db_location& operator=(const db_location&) = delete;

  const std::string& file() const noexcept { return file_; }

 private:
  std::string temp_dir_;  // empty when the path was given
  std::string file_;
};

}  // namespace http_service
