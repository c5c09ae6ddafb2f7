// SPDX-License-Identifier: BSL-1.0
// Introspection for a hung service: which tasks exist, what each waits for, its context.
#pragma once

// Contract:
//   current_task()  the task running on this thread (nullopt outside a task).
//   all_tasks()     every unfinished task of the running loop, newest first.
//   dump_tasks()    the same as text, one block per task: id, name, state, what it awaits,
//                   and its context's vars (name = value; values printable as text shown,
//                   others as <value>).
//   Thread-safety: call from a loop thread. A task running on another loop thread at that
//   moment is listed with state "running" and its vars left out (they are changing).
//   Cost: collects every live task under the loop's lock, then reads each one; meant for
//   diagnostics, not hot paths.
//
// Example:
//   std::fputs(baton::dump_tasks().c_str(), stderr);   // e.g. from a SIGUSR1 handler task

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace baton {

struct task_info {
  std::uint64_t id = 0;
  std::string name;
  std::string state;     // created, scheduled, running, suspended
  std::string awaiting;  // sleep, task, asio operation, lock, ... (empty when not suspended)
  std::vector<std::pair<std::string, std::string>> vars;  // the task's context
};

std::optional<task_info> current_task();
std::vector<task_info> all_tasks();
std::string dump_tasks();

}  // namespace baton
