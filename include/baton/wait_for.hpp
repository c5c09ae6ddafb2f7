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

#include <baton/detail/asio_glue.hpp>
#include <baton/detail/awaitable_traits.hpp>
#include <baton/detail/cancel.hpp>
#include <baton/errors.hpp>
#include <baton/task.hpp>

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <mutex>

namespace baton {

namespace detail {

/// Shared by wait_for and its timer handler (which may run after wait_for returned).
struct timeout_state {
  std::mutex mutex;
  task_base* task = nullptr;
  bool finished = false;    // wait_for is past its await: the handler must not cancel
  bool fired = false;       // the handler requested the cancellation
  std::uint32_t entry = 0;  // the task's cancellation requests when wait_for began
};

void arm_timeout(const std::shared_ptr<timeout_state>& s, boost::asio::steady_timer& timer);
/// Marks the wait over and withdraws the time-out's cancellation request if it fired.
/// Returns true when the time-out fired and nobody else asked to cancel the task since
/// wait_for began (it had `entry` requests then).
bool end_timeout(timeout_state& s, boost::asio::steady_timer& timer) noexcept;

}  // namespace detail

template <class Awaitable>
[[nodiscard]] task<detail::await_result_t<Awaitable>> wait_for(
    Awaitable a, std::chrono::steady_clock::duration d) {
  detail::task_base* self = detail::running_task;
  auto state = std::make_shared<detail::timeout_state>();
  state->task = self;
  state->entry = detail::cancelling(self);
  boost::asio::steady_timer timer(detail::io_of(*self->owner_loop), d);
  detail::arm_timeout(state, timer);
  try {
    if constexpr (std::is_void_v<detail::await_result_t<Awaitable>>) {
      co_await std::move(a);
      detail::end_timeout(*state, timer);
      co_return;
    } else {
      auto r = co_await std::move(a);
      detail::end_timeout(*state, timer);
      co_return r;
    }
  } catch (const cancelled_error&) {
    if (!detail::end_timeout(*state, timer)) throw;  // not ours, or someone else cancelled too
  } catch (...) {
    detail::end_timeout(*state, timer);
    throw;
  }
  throw timeout_error("baton: wait_for timed out");
}

}  // namespace baton
