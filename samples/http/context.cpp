// SPDX-License-Identifier: BSL-1.0
// The request's context vars, request id generation and the context-aware log format.
#include "context.hpp"

#include <baton/spdlog.hpp>
#include <baton/trace_context.hpp>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <thread>

namespace http_service {

baton::context_var<std::string> current_request_id("request_id");
baton::context_var<std::string> current_user("user");
// inherit::never: a task the request spawns to outlive it must not inherit its deadline.
baton::context_var<std::int64_t> current_deadline("deadline", {.flow = baton::inherit::never});

void set_deadline(std::chrono::steady_clock::time_point at) {
  (void)current_deadline.set(
      std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count());
}
baton::context_var<std::uint64_t> current_connection("conn");
// inherit::tasks: a pool thread never finds the handle in its context; the task hands it over.
baton::context_var<notes_db*> current_db("db", {.flow = baton::inherit::tasks});

std::chrono::milliseconds time_left() {
  using namespace std::chrono;
  const std::optional<std::int64_t> d = current_deadline.try_get();
  if (!d) return hours(24);
  const auto left =
      duration_cast<milliseconds>(nanoseconds(*d) - steady_clock::now().time_since_epoch());
  return left.count() > 0 ? left : milliseconds(0);
}

std::string new_request_id() {
  static const unsigned prefix = std::random_device{}() & 0xffffffu;
  // relaxed: only uniqueness matters, and fetch_add gives that under any ordering.
  static std::atomic<std::uint64_t> counter{0};
  char buf[40];
  std::snprintf(
      buf, sizeof buf, "r-%06x-%llu", prefix,
      static_cast<unsigned long long>(counter.fetch_add(1, std::memory_order_relaxed) + 1));
  return buf;
}

namespace {

/// Flushes a logger every `interval` on a thread of its own, until destroyed. (spdlog 1.10's
/// flush_every counts whole seconds.)
class periodic_flusher {
 public:
  periodic_flusher(std::shared_ptr<spdlog::logger> logger, std::chrono::milliseconds interval)
      : thread_([logger = std::move(logger), interval](std::stop_token stop) {
          std::mutex mutex;
          std::condition_variable_any wake;  // only the stop request wakes it early
          std::unique_lock lock(mutex);
          while (!stop.stop_requested()) {
            (void)wake.wait_for(lock, stop, interval, [] { return false; });
            logger->flush();
          }
        }) {}

 private:
  std::jthread thread_;  // asked to stop and joined first thing in the destructor
};

std::unique_ptr<periodic_flusher> flusher;  // ends at exit, after main returned

}  // namespace

void setup_logging(const log_options& opts) {
  std::shared_ptr<spdlog::logger> logger;
  if (opts.file.empty()) {
    logger = std::make_shared<spdlog::logger>("http_service",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
  } else {
    logger = std::make_shared<spdlog::logger>(
        "http_service", std::make_shared<spdlog::sinks::basic_file_sink_mt>(opts.file, true));
  }
  // A synchronous logger: the line is formatted inside the log call, on the caller's thread,
  // so %* shows the caller's context (see include/baton/spdlog.hpp, "Sync vs async").
  baton::log_fields fields;
  fields.add(current_connection)
      .add(current_request_id)
      .add(current_user)
      .add(baton::trace_parent_var(), "trace", [](const std::optional<baton::trace_parent>& t) {
        return t ? t->trace_id_hex() : std::string("-");
      });
  logger->set_formatter(
      baton::make_context_formatter("%H:%M:%S.%e %-7l [%*] %v", std::move(fields)));
  logger->set_level(opts.level);
  // The bound on how long a line may wait in the file's buffer (docs/http-service.md, "Log
  // durability"): warnings at once, the rest within flush_interval.
  const bool every_line = opts.flush_interval.count() <= 0;
  logger->flush_on(every_line ? spdlog::level::trace : spdlog::level::warn);
  flusher.reset();
  if (!every_line) flusher = std::make_unique<periodic_flusher>(logger, opts.flush_interval);
  spdlog::set_default_logger(std::move(logger));
}

void flush_log() { spdlog::default_logger_raw()->flush(); }

}  // namespace http_service
