// SPDX-License-Identifier: BSL-1.0
// run(): run a task on a new loop and return its result; like asyncio.run.
#pragma once

// Contract:
//   run(main, opts) makes a new loop: with opts.threads == 1 this thread is the loop; with more,
//   opts.threads loop threads run the tasks while this thread waits and coordinates. It runs main
//   in a copy of the calling thread's context, and when main finishes cancels every task still
//   alive, waits for them, shuts the blocking pool down and returns main's result or rethrows its
//   exception.
//     Context:      main sees a copy of the caller's context, taken as spawn() takes it (without
//                   inherit::never vars); its sets never reach the caller, whose context (and
//                   mirrors) is restored when run() returns or throws. Plain Asio handlers the
//                   loop runs each start in an empty context; what they set is gone when they
//                   return.
//     Exceptions:   main's; runtime_error when called on a thread that already runs a loop.
//     Thread-safety: each call owns its loop; several threads may each run() their own.
//   run_options::exception_handler receives failures nobody retrieved (default: one line on
//   stderr naming the task and the error). run_options::debug turns on debug mode (debug.hpp).
//
// Example:
//   int main() { return baton::run(serve()); }

#include <baton/debug.hpp>
#include <baton/detail/task_base.hpp>
#include <baton/errors.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace baton {

struct run_options {
  unsigned threads = 1;              // loop threads: tasks resume on any of them
  std::size_t blocking_threads = 0;  // to_thread pool size; 0 = min(32, cores + 4)
  std::function<void(const unhandled_failure&)> exception_handler;  // empty = stderr
  // Debug mode (debug.hpp); also on when the environment has BATON_DEBUG=1.
  bool debug = false;
  std::chrono::nanoseconds slow_step = std::chrono::milliseconds(100);  // report longer steps
  std::vector<std::string> debug_vars;  // names of the context vars a slow_step report shows
  std::function<void(const debug_report&)> debug_handler;  // empty = stderr
};

namespace detail {
void run_main(task_base* main, const run_options& opts);
}

/// run(f) with a coroutine function instead of the task it makes: one line saying so.
template <class F, class... Rest>
requires std::is_function_v<std::remove_pointer_t<std::remove_cvref_t<F>>>
auto run(F&&, Rest&&...) {
  static_assert(detail::dependent_false<F>,
                "baton: run(f) needs a task: call the coroutine function, run(f())");
}

template <class T>
T run(task<T> main, run_options opts = {}) {
  if (detail::running_loop_or_null() != nullptr) {
    throw baton::runtime_error("baton: run() called on a thread that already runs a loop");
  }
  auto h = detail::access::adopt_handle<task_handle<T>>(
      detail::make_state(std::move(main), nullptr, detail::make_task_name("main")));
  detail::run_main(detail::access::base(h), opts);
  return h.result();
}

}  // namespace baton
