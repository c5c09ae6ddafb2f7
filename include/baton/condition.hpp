// SPDX-License-Identifier: BSL-1.0
// condition: wait until notified, under a baton::lock; like asyncio.Condition.
#pragma once

// Contract:
//   condition()            owns its lock.   condition(l)  uses l (which must outlive it).
//   acquire(), scoped(), release(), locked()   the lock's (lock.hpp).
//   co_await c.wait()      the caller must hold the lock (runtime_error otherwise). Releases it,
//                          waits for a notify(), and re-acquires it before returning, also when
//                          cancelled: wait() returns or throws with the lock held.
//   co_await c.wait_for(p) while !p(): wait(). Returns p()'s last (truthy) value; p runs with
//                          the lock held.
//   notify(n = 1)          wakes up to n waiters, oldest first. notify_all() wakes them all.
//                          Both need the lock held (runtime_error otherwise).
// Waking is FIFO, but a woken waiter queues for the lock like anyone else, so re-check the
// condition after wait() (or use wait_for): like every condition variable.
//   co_await c.wait() / co_await c.wait_for(p):
//     Context:      runs inline in the calling task, in its context (unchanged), on whatever
//                   loop thread it resumes.
//     Exceptions:   runtime_error without the lock; cancelled_error when cancelled (with the
//                   lock held again); whatever p throws.
//     Cancellation: cancel() wakes the waiter at once; it re-acquires the lock (a second
//                   cancellation during that is absorbed: the lock is always re-acquired) and
//                   throws cancelled_error. A waiter cancelled just after a notify() picked it
//                   passes the notification on to the next waiter, so none is lost.
//     Thread-safety: any loop thread may wait and notify at once (holding the lock).
//     Example:      see below.
// The condition must outlive its waiters.
//
// Example:
//   baton::condition cv;
//   std::deque<job> jobs;                                       // guarded by cv's lock
//   // consumer:
//   auto g = co_await cv.scoped();
//   co_await cv.wait_for([&] { return !jobs.empty(); });
//   job j = std::move(jobs.front()); jobs.pop_front();
//   // producer:
//   auto g = co_await cv.scoped();
//   jobs.push_back(j);
//   cv.notify();

#include <baton/detail/wait_list.hpp>
#include <baton/lock.hpp>
#include <baton/task.hpp>

#include <cstddef>
#include <mutex>
#include <type_traits>

namespace baton {

class condition {
 public:
  condition() noexcept : lock_(&own_) {}
  explicit condition(baton::lock& l) noexcept : lock_(&l) {}
  condition(const condition&) = delete;
  condition& operator=(const condition&) = delete;

  [[nodiscard]] lock::acquire_awaitable acquire() noexcept { return lock_->acquire(); }
  [[nodiscard]] lock::scoped_awaitable scoped() noexcept { return lock_->scoped(); }
  void release() { lock_->release(); }
  bool locked() const { return lock_->locked(); }
  /// The lock this condition waits under.
  baton::lock& underlying_lock() const noexcept { return *lock_; }

  [[nodiscard]] task<> wait();

  template <class Predicate>
  [[nodiscard]] task<std::decay_t<std::invoke_result_t<Predicate&>>> wait_for(Predicate p) {
    auto result = p();
    while (!result) {
      co_await wait();
      result = p();
    }
    co_return result;
  }

  void notify(std::size_t n = 1);
  void notify_all();

 private:
  friend struct detail::sync_access;
  class wait_awaitable;  // runtime/sync.cpp

  baton::lock own_;
  baton::lock* lock_;
  std::mutex mutex_;
  detail::wait_list waiters_;
};

}  // namespace baton
