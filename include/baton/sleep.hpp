// SPDX-License-Identifier: BSL-1.0
// sleep(d): suspend the task for d; sleep(0) yields to the loop.
#pragma once

// Contract: co_await sleep(d) resumes the task after d (on a steady clock); d <= 0 only lets
// every other ready task run first (asyncio.sleep(0)).
//   Context:      the task's own context, unchanged, on whatever loop thread it resumes.
//   Exceptions:   cancelled_error when the task is cancelled while sleeping (at once: the timer
//                 is cancelled) or was cancelled before.
//   Cancellation: cancel() wakes the task immediately with cancelled_error.
//   Thread-safety: used by the awaiting task only.
//
// Example:
//   co_await baton::sleep(std::chrono::milliseconds(50));

#include <baton/detail/asio_glue.hpp>
#include <baton/detail/cancel.hpp>
#include <baton/task.hpp>

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <optional>

namespace baton {

class [[nodiscard]] sleep_awaitable {
 public:
  explicit sleep_awaitable(std::chrono::steady_clock::duration d) noexcept : d_(d) {}

  bool await_ready() const noexcept { return false; }

  template <detail::baton_promise P>
  bool await_suspend(std::coroutine_handle<P> h) {
    t_ = detail::running_task;
    if (d_ <= std::chrono::steady_clock::duration::zero()) {
      if (detail::cancel_pending(t_)) return false;
      t_->resume_point = h;
      detail::schedule(t_);
      return true;
    }
    timer_.emplace(detail::io_of(*t_->owner_loop), d_);
    return detail::arm(t_, h, kind, this, [this] {
      timer_->async_wait([t = t_](const boost::system::error_code&) { detail::schedule(t); });
      return true;
    });
  }

  void await_resume() {
    if (d_ <= std::chrono::steady_clock::duration::zero()) {
      detail::throw_if_cancel_pending(t_);
    } else {
      detail::disarm(t_);
    }
  }

 private:
  static void cancel_timer(detail::task_base*, void* self) noexcept {
    static_cast<sleep_awaitable*>(self)->timer_->cancel();
  }
  static constexpr detail::await_kind kind{"sleep", &cancel_timer};

  std::chrono::steady_clock::duration d_;
  detail::task_base* t_ = nullptr;
  std::optional<boost::asio::steady_timer> timer_;
};

[[nodiscard]] inline sleep_awaitable sleep(std::chrono::steady_clock::duration d) noexcept {
  return sleep_awaitable(d);
}

}  // namespace baton
