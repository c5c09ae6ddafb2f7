// SPDX-License-Identifier: BSL-1.0
// suspended_at(h, "what"): wait until a spawned task is suspended at a named point (introspection).
#pragma once

#include <baton/introspection.hpp>
#include <baton/sleep.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <chrono>
#include <string>

namespace baton_test {

/// Yields to the loop until h's task is suspended awaiting `what` (task_info::awaiting: "sleep",
/// "asio operation", "lock", ...) and `also()` holds; true once it is, false after `rounds`
/// yields without it. A test that cancels a task "while it waits" uses this to prove the task
/// got there: a task cancelled before its first step also ends in cancelled_error, so without
/// the check such a test passes even when the task never reached the operation.
/// Each yield is a sleep(0); while tasks are ready the loop lets Asio run every 50 us or so
/// (runtime/loop.hpp, io_check_due), so I/O completions that lead the task to the point are
/// run on the way.
template <class T, class Also>
baton::task<bool> suspended_at(const baton::task_handle<T>& h, std::string what, Also also,
                               int rounds = 100000) {
  for (int i = 0; i < rounds; ++i) {
    for (const baton::task_info& t : baton::all_tasks()) {
      if (t.id == h.id() && t.state == "suspended" && t.awaiting == what && also()) {
        co_return true;
      }
    }
    co_await baton::sleep(std::chrono::milliseconds(0));
  }
  co_return false;
}

template <class T>
baton::task<bool> suspended_at(const baton::task_handle<T>& h, std::string what) {
  return suspended_at(h, std::move(what), [] { return true; });
}

}  // namespace baton_test
