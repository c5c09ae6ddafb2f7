// SPDX-License-Identifier: BSL-1.0
// The loop's timers as header templates use them: sleeping tasks, and timer nodes (wait_for).
#pragma once

// Contract: every loop keeps one timer structure (runtime/timer_wheel.hpp, design in
// docs/design/timers.md) driven by one Asio steady_timer. It holds two kinds of entries:
//   - a sleeping task, linked through the task's own fields (no memory of its own): its
//     deadline is the time_point its hook.arg points to while it sleeps;
//   - a timer_node, for a timer that is not a task's sleep (wait_for's time-out).
// Due entries are taken under the structure's lock and fired after it is released, on a loop
// thread: a task is scheduled, a node's fire() is called. Adding and cancelling are O(1).
//   Thread-safety: any thread of the entry's loop (sleep's cancel hook: any thread).

#include <chrono>
#include <cstdint>

namespace baton::detail {

class loop;
struct task_base;

struct timer_node {
  std::uintptr_t next = 0;  // the structure's links (tagged; timer_wheel reads them)
  std::uintptr_t prev = 0;
  std::chrono::steady_clock::time_point deadline{};
  void (*fire)(timer_node* self) noexcept = nullptr;  // on a loop thread, no lock held
  bool queued = false;                                // under the structure's lock
};

/// Puts t (the running task, inside its arm()) to sleep until *deadline, which must stay put
/// and be what t->hook.arg points to until t is woken.
void start_sleep(task_base* t, const std::chrono::steady_clock::time_point* deadline);
/// sleep's cancel hook: unlinks t and schedules it, unless the timers already took it to wake.
void cancel_sleep(task_base* t) noexcept;

/// Queues n (deadline and fire set) on l's timers.
void add_timer(loop& l, timer_node* n);
/// Unlinks n; false when it was already taken to be fired (fire() runs, or ran, once).
bool cancel_timer(loop& l, timer_node* n) noexcept;

}  // namespace baton::detail
