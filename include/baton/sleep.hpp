// SPDX-License-Identifier: BSL-1.0
// sleep(d): suspend the task for d; sleep(0) yields to the loop.
#pragma once

// Contract: co_await sleep(d) resumes the task after d (on a steady clock); d <= 0 only lets
// every other ready task run first (asyncio.sleep(0)).
//   Context:      the task's own context, unchanged, on whatever loop thread it resumes.
//   Exceptions:   cancelled_error when the task is cancelled while sleeping (at once) or was
//                 cancelled before.
//   Memory:       none beyond the 8-byte awaiter in the frame: the sleeping task is linked into
//                 its loop's timer wheel through its own fields (docs/design/timers.md).
//   Cancellation: cancel() wakes the task immediately with cancelled_error (the task leaves the
//                 loop's timers in O(1)).
//   Thread-safety: used by the awaiting task only.
//
// Example:
//   co_await baton::sleep(std::chrono::milliseconds(50));

#include <baton/detail/cancel.hpp>
#include <baton/detail/timer.hpp>
#include <baton/task.hpp>

#include <chrono>
#include <concepts>

namespace baton {

class [[nodiscard]] sleep_awaitable {
  using clock = std::chrono::steady_clock;

 public:
  explicit sleep_awaitable(clock::duration d) noexcept : deadline_(deadline_after(d)) {}

  bool await_ready() const noexcept { return false; }

  template <detail::baton_promise P>
  bool await_suspend(std::coroutine_handle<P> h) {
    detail::task_base* const t = detail::running_task;
    if (deadline_ == yield_only) {
      if (detail::cancel_pending(t)) return false;
      t->resume_point = h;
      detail::schedule(t);
      return true;
    }
    // The task itself is the timer entry (linked through its own fields); the loop's timers
    // read the deadline through the hook's argument while it sleeps.
    return detail::arm(t, h, kind, &deadline_, [&] {
      detail::start_sleep(t, &deadline_);
      return true;
    });
  }

  void await_resume() {
    if (deadline_ == yield_only) {
      detail::throw_if_cancel_pending(detail::running_task);
    } else {
      detail::disarm(detail::running_task);
    }
  }

 private:
  static constexpr clock::time_point yield_only = clock::time_point::min();

  /// now + d, saturated at the clock's end; yield_only for d <= 0.
  static clock::time_point deadline_after(clock::duration d) noexcept {
    if (d <= clock::duration::zero()) return yield_only;
    const clock::time_point now = clock::now();
    return d >= clock::time_point::max() - now ? clock::time_point::max() : now + d;
  }
  static void cancel_sleep(detail::task_base* t, void*) noexcept { detail::cancel_sleep(t); }
  static constexpr detail::await_kind kind{"sleep", &cancel_sleep};

  clock::time_point deadline_;  // yield_only, or when to wake (the whole awaiter: 8 bytes)
};

[[nodiscard]] inline sleep_awaitable sleep(std::chrono::steady_clock::duration d) noexcept {
  return sleep_awaitable(d);
}

/// sleep(d) for any other duration type (`sleep(1h)`, `sleep(50ms)`): the same as converting d
/// first, saturated at the clock's range. Taken by value for the frame's size: converting at
/// the call binds d to a reference, so g++ would keep the temporary in the coroutine frame
/// across the suspension (8 bytes per sleeping task); here it never reaches the frame.
template <class Rep, class Period>
requires(
    !std::same_as<std::chrono::duration<Rep, Period>, std::chrono::steady_clock::duration> &&
    std::convertible_to<std::chrono::duration<Rep, Period>, std::chrono::steady_clock::duration>)
    [[nodiscard]] sleep_awaitable sleep(std::chrono::duration<Rep, Period> d) noexcept {
  // Saturated, not wrapped: hours::max() in nanoseconds does not fit 64 bits.
  using clock_duration = std::chrono::steady_clock::duration;
  using given = std::chrono::duration<Rep, Period>;
  if (d <= given::zero()) return sleep_awaitable(clock_duration::zero());
  if (d >= std::chrono::duration_cast<given>(clock_duration::max())) {
    return sleep_awaitable(clock_duration::max());
  }
  return sleep_awaitable(clock_duration(d));
}

}  // namespace baton
