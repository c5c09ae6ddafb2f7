// SPDX-License-Identifier: BSL-1.0
// wait_for(a, d): await a, but give up after d; like asyncio.wait_for.
#pragma once

// Contract: co_await wait_for(a, d) awaits `a` (a task<T>, a task_handle<T>, sleep, an Asio
// operation with use_task, any baton awaitable) in the calling task; if it has not finished
// after d, it is cancelled, waited for, and timeout_error is thrown.
//   Context:      `a` runs in the calling task and shares its context (as a plain co_await).
//   Exceptions:   timeout_error on time-out; `a`'s own exception otherwise; cancelled_error
//                 when the calling task itself is cancelled (that wins over a time-out).
//   Cancellation: on time-out, or when the caller is cancelled, `a`'s current suspension point
//                 is cancelled (an awaited handle's task is cancelled too).
//   Thread-safety: used by the awaiting task only.
//
// Example:
//   auto n = co_await baton::wait_for(sock.async_read_some(buf, baton::use_task), 2s);

#include <baton/detail/awaitable_traits.hpp>
#include <baton/detail/cancel.hpp>
#include <baton/detail/timer.hpp>
#include <baton/errors.hpp>
#include <baton/task.hpp>

#include <atomic>
#include <chrono>
#include <mutex>

namespace baton {

namespace detail {

/// wait_for's time-out: a node on the loop's timers. The node and what the fire needs live in
/// one heap block shared by wait_for and the timers (the fire may run on another loop thread
/// while wait_for ends); the last of the two frees it.
class timeout {
 public:
  /// Queues the time-out for task t after d.
  timeout(task_base* t, std::chrono::steady_clock::duration d);
  ~timeout();  // ends the wait if end() was not called (an exception from the awaitable's start)
  timeout(const timeout&) = delete;
  timeout& operator=(const timeout&) = delete;

  /// Marks the wait over, takes the node off the timers, and withdraws the time-out's
  /// cancellation request if it fired. Returns true when the time-out fired and nobody else
  /// asked to cancel the task since wait_for began.
  bool end() noexcept;

 private:
  struct shared;
  shared* s_;
};

}  // namespace detail

template <class Awaitable>
[[nodiscard]] task<detail::await_result_t<Awaitable>> wait_for(
    Awaitable a, std::chrono::steady_clock::duration d) {
  detail::timeout limit(detail::running_task, d);
  try {
    if constexpr (std::is_void_v<detail::await_result_t<Awaitable>>) {
      co_await std::move(a);
      limit.end();
      co_return;
    } else {
      auto r = co_await std::move(a);
      limit.end();
      co_return r;
    }
  } catch (const cancelled_error&) {
    if (!limit.end()) throw;  // not ours, or someone else cancelled too
  } catch (...) {
    limit.end();
    throw;
  }
  throw timeout_error("baton: wait_for timed out");
}

}  // namespace baton
