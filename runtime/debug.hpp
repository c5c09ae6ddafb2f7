// SPDX-License-Identifier: BSL-1.0
// Debug mode's monitor (private): times steps and reports what debug.hpp lists.
#pragma once

#include <baton/debug.hpp>
#include <baton/detail/task_base.hpp>
#include <baton/run.hpp>

#include <chrono>
#include <coroutine>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <typeinfo>
#include <vector>

namespace baton::detail {

/// One per loop in debug mode (a loop without one pays a null check per step, nothing more).
/// The loop calls step() in place of resuming a task's frame; the other reports come from
/// ~task (never awaited) and context::run (left on another thread).
class debug_monitor {
 public:
  /// A monitor when opts or the environment (BATON_DEBUG=1) ask for debug mode, else null.
  static std::unique_ptr<debug_monitor> make(const run_options& opts);

  /// Resumes `frame` of task t (running, its context entered) and reports a slow step.
  void step(task_base* t, std::coroutine_handle<> frame);
  /// Reports r (its message already written) through the handler, one at a time.
  void report(debug_report& r) noexcept;

 private:
  debug_monitor(const run_options& opts);

  std::chrono::nanoseconds slow_step_;
  std::vector<std::string> vars_;
  std::function<void(const debug_report&)> handler_;
  std::mutex mutex_;  // one report at a time
};

/// A type's name for messages: `int`, `std::string` (demangled when the ABI can).
std::string type_name(const std::type_info& type);

/// The monitor of the loop running on this thread, else nullptr.
debug_monitor* current_debug_monitor() noexcept;

}  // namespace baton::detail
