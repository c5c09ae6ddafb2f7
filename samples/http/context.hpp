// SPDX-License-Identifier: BSL-1.0
// The ambient values of one request (context vars) and the log format that shows them.
#pragma once

// Who sets what (nothing else passes these values around):
//   current_connection   the connection's task, once (server::connection).
//   current_request_id,  the request's task, once per request (server::serve_request), from
//   current_user,        X-Request-Id, X-User and X-Deadline-Ms; the W3C trace context comes
//   current_deadline     from baton::extract() and baton::start_span() in the same place.
// Everything the request runs sees them: the handler it awaits, the tasks the handler spawns
// (copies of its context), the to_thread jobs it offloads (copies again), and the log
// formatter, which reads them on whatever thread formats the line. Two go less far:
// current_deadline is inherit::never (only the request's own task and what it awaits: a task
// it spawns starts without a deadline), and current_db, the connection's database handle, is
// inherit::tasks (set by server::connection: the request's tasks reach it, a to_thread job
// does not, so a blocking job uses only the handle its task gave it, explicitly).

#include <baton/context_var.hpp>

#include <spdlog/common.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace http_service {

extern baton::context_var<std::string> current_request_id;
extern baton::context_var<std::string> current_user;
// The deadline in steady_clock nanoseconds since the clock's epoch: a context_var of a class
// type stored inline (a time_point, a duration) trips g++ 12's -Wclass-memaccess inside baton.
extern baton::context_var<std::int64_t> current_deadline;
extern baton::context_var<std::uint64_t> current_connection;
class notes_db;
extern baton::context_var<notes_db*> current_db;

/// Sets current_deadline in the current context.
void set_deadline(std::chrono::steady_clock::time_point at);

/// Time left before the current request's deadline: zero when it has passed, a day when the
/// context has no deadline.
std::chrono::milliseconds time_left();

/// A request id for a request that came without one: `r-<6 hex, per process>-<counter>`.
std::string new_request_id();

struct log_options {
  std::string file;  // empty: stderr
  spdlog::level::level_enum level = spdlog::level::info;
  // Every line is written through to the file within this bound (0: as it is logged).
  std::chrono::milliseconds flush_interval{1000};
};

/// Makes spdlog's default logger print `[conn=.. request_id=.. user=.. trace=..]` before each
/// message, read from the context of the thread that logs (baton::make_context_formatter).
/// Durability (docs/http-service.md, "Log durability"): a line reaches the file (the kernel's
/// page cache, which a killed process does not lose) within opts.flush_interval, by a
/// flusher thread; a warning or worse at once; with a flush_interval of
/// 0 every line at once. The server also calls flush_log() before the response of every
/// request that may have changed something.
void setup_logging(const log_options& opts);

/// Writes every line logged so far through to the file (the server calls it before the
/// response of a request that may have changed something: not GET, HEAD or OPTIONS).
void flush_log();

}  // namespace http_service
