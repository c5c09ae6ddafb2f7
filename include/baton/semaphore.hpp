// SPDX-License-Identifier: BSL-1.0
// semaphore, bounded_semaphore: counted permits for tasks; like asyncio.(Bounded)Semaphore.
#pragma once

// Contract:
//   semaphore(n)           n permits (default 1); runtime_error when n < 0.
//   co_await s.acquire()   takes a permit: at once when one is free and nobody waits, else
//                          waits its turn (FIFO).
//   release()              returns a permit: handed straight to the first waiter, else counted.
//   locked()               whether an acquire() would have to wait now (a snapshot).
//   bounded_semaphore(n)   the same, but release() beyond n permits throws runtime_error (where
//                          asyncio raises ValueError): it catches releases without acquires.
//   co_await s.acquire():
//     Context:      the waiting task's own context, unchanged, on whatever loop thread it
//                   resumes.
//     Exceptions:   cancelled_error when the task is cancelled while waiting (or was cancelled
//                   before it had to wait); no permit is then held.
//     Cancellation: cancel() wakes the waiter at once with cancelled_error, and it leaves the
//                   queue. If a permit had just been handed to it, it releases the permit
//                   (to the next waiter, or back to the count) before throwing: permits are
//                   never lost.
//     Thread-safety: any loop thread may acquire, release and query one semaphore at once;
//                   release() also from threads outside the loop.
//     Example:      see below.
// The semaphore must outlive its waiters.
//
// Example:
//   baton::semaphore slots(10);                  // at most 10 requests in flight
//   co_await slots.acquire();
//   try { co_await fetch(url); } catch (...) { slots.release(); throw; }
//   slots.release();

#include <baton/detail/wait_list.hpp>

#include <cstddef>
#include <mutex>

namespace baton {

class semaphore {
 public:
  /// co_await s.acquire(): see the contract above.
  class [[nodiscard]] acquire_awaitable : public detail::wait_op<acquire_awaitable> {
   public:
    explicit acquire_awaitable(semaphore& s) noexcept;

   private:
    friend detail::wait_op<acquire_awaitable>;
    static const detail::wait_ops& ops() noexcept;
  };

  explicit semaphore(std::ptrdiff_t value = 1);
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;

  [[nodiscard]] acquire_awaitable acquire() noexcept { return acquire_awaitable(*this); }
  void release();
  bool locked() const;

 protected:
  semaphore(std::ptrdiff_t value, bool bounded);

 private:
  friend struct detail::sync_access;

  mutable std::mutex mutex_;
  std::size_t value_;  // free permits; 0 whenever tasks wait (permits are handed over)
  std::size_t bound_;  // release() above this throws; SIZE_MAX when unbounded
  detail::wait_list waiters_;
};

class bounded_semaphore : public semaphore {
 public:
  explicit bounded_semaphore(std::ptrdiff_t value = 1) : semaphore(value, true) {}
};

}  // namespace baton
