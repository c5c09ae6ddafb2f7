// SPDX-License-Identifier: BSL-1.0
// event: a flag tasks can wait for; like asyncio.Event.
#pragma once

// Contract:
//   set()       sets the flag and wakes every task waiting now (in the order they came).
//   clear()     resets the flag; later waits block until the next set().
//   is_set()    the flag (a snapshot: another thread may change it right after).
//   co_await ev.wait()   returns at once when the flag is set, else when set() is next called.
//     Context:      the waiting task's own context, unchanged, on whatever loop thread it
//                   resumes.
//     Exceptions:   cancelled_error when the task is cancelled while waiting, or was cancelled
//                   before it had to wait.
//     Cancellation: cancel() wakes the waiter at once with cancelled_error; a waiter cancelled
//                   just after set() woke it also gets cancelled_error (the flag stays set, the
//                   other waiters are unaffected).
//     Thread-safety: set/clear/is_set/wait may be called from any loop thread at once; set()
//                   and clear() also from threads outside the loop.
//     Example:      see below.
// The event must outlive its waiters. set() touches the event only before it schedules the
// woken tasks, so a woken task may destroy the event right away.
//
// Example:
//   baton::event ready;
//   auto h = baton::spawn([](baton::event& e) -> baton::task<> { co_await e.wait(); }(ready));
//   ready.set();

#include <baton/detail/wait_list.hpp>

#include <mutex>

namespace baton {

class event {
 public:
  /// co_await ev.wait(): see the contract above.
  class [[nodiscard]] wait_awaitable : public detail::wait_op<wait_awaitable> {
   public:
    explicit wait_awaitable(event& e) noexcept;

   private:
    friend detail::wait_op<wait_awaitable>;
    static const detail::wait_ops& ops() noexcept;
  };

  event() = default;
  event(const event&) = delete;
  event& operator=(const event&) = delete;

  void set();
  void clear();
  bool is_set() const;

  [[nodiscard]] wait_awaitable wait() noexcept { return wait_awaitable(*this); }

 private:
  friend struct detail::sync_access;

  mutable std::mutex mutex_;
  bool flag_ = false;
  detail::wait_list waiters_;
};

}  // namespace baton
