// SPDX-License-Identifier: BSL-1.0
// Debug mode, like asyncio's: slow steps, tasks never awaited, contexts left on another thread.
#pragma once

// Contract:
//   Debug mode is on for a loop when run_options::debug is true or the environment variable
//   BATON_DEBUG is 1 when run() starts. It then reports, through run_options::debug_handler
//   (default: one line on stderr, "baton debug: ..."):
//     slow_step        a task step (the code between two suspension points) that ran longer
//                      than run_options::slow_step (default 100 ms), blocking the loop thread:
//                      the task's name, how long, what it awaits now (empty if it finished)
//                      and the context vars named in run_options::debug_vars.
//     never_awaited    a task<T> destroyed without ever being awaited or spawned (asyncio's
//                      "coroutine was never awaited"): its type and the task that dropped it.
//     context_left_elsewhere
//                      a context::run() whose function returned on another thread than the
//                      one that entered it (a fiber or stackful coroutine that moved while
//                      suspended inside run): the sets in between went to the wrong context.
//   Off, it costs one predictable branch per step and nothing else (docs/benchmarks.md).
//   Thread-safety: the handler is called on the thread where the event happened, never on two
//   threads at once for one loop; it runs inside the task's context for slow_step. What it
//   throws is dropped. It must not block (a report is made on a loop thread).
//
// Example:
//   baton::run(serve(), {.debug = true, .debug_vars = {"request_id"}});
//   // baton debug: task 'conn-7' ran 512.0 ms without suspending (slow_step 100 ms);
//   //   awaiting asio operation; request_id=r-42

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace baton {

struct debug_report {
  enum class kind : std::uint8_t { slow_step, never_awaited, context_left_elsewhere };
  kind what = kind::slow_step;
  std::string task;                 // the task concerned, or the one where it happened
  std::chrono::nanoseconds took{};  // slow_step: how long the step ran
  std::string awaiting;             // slow_step: what the task awaits now ("" if finished)
  std::vector<std::pair<std::string, std::string>> vars;  // slow_step: chosen vars, as text
  std::string message;  // all of it in one line, as the default handler prints
};

}  // namespace baton
