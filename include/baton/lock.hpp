// SPDX-License-Identifier: BSL-1.0
// lock: a mutual-exclusion lock for tasks; like asyncio.Lock, strictly FIFO.
#pragma once

// Contract:
//   co_await l.acquire()   takes the lock: at once when it is free, else waits its turn.
//   release()              gives it up: handed straight to the first waiter (which becomes the
//                          owner before it even runs), else the lock becomes free.
//                          runtime_error when the lock is not locked.
//   locked()               whether some task owns it (a snapshot).
//   co_await l.scoped()    acquire(), returning a guard that releases when destroyed.
// Fair: waiters get the lock in the order they started waiting, and a task arriving while
// others wait queues behind them. Like asyncio.Lock it is not re-entrant and does not record
// its owner: any task may release it (acquiring twice from one task deadlocks that task).
//   co_await l.acquire() / co_await l.scoped():
//     Context:      the waiting task's own context, unchanged, on whatever loop thread it
//                   resumes.
//     Exceptions:   cancelled_error when the task is cancelled while waiting (or was cancelled
//                   before it had to wait); the lock is then not held.
//     Cancellation: cancel() wakes the waiter at once with cancelled_error, and it leaves the
//                   queue. If the lock had just been handed to it, it passes the lock on (to
//                   the next waiter, or frees it) before throwing: the lock is never lost.
//     Thread-safety: any loop thread may acquire, release and query the same lock at once.
//     Example:      see below.
// The lock must outlive its waiters.
//
// Example:
//   baton::lock l;
//   {
//     auto g = co_await l.scoped();   // l.locked()
//     co_await write_all(sock, msg);   // one writer at a time
//   }                                  // released here, also when write_all throws

#include <baton/detail/wait_list.hpp>

#include <mutex>
#include <utility>

namespace baton {

class lock {
 public:
  /// co_await l.acquire(): see the contract above.
  class [[nodiscard]] acquire_awaitable : public detail::wait_op<acquire_awaitable> {
   public:
    explicit acquire_awaitable(lock& l) noexcept;

   private:
    friend detail::wait_op<acquire_awaitable>;
    static const detail::wait_ops& ops() noexcept;
  };

  /// Owns a held lock and releases it when destroyed (move-only). Releasing the lock behind
  /// the guard's back is a bug: the guard's destructor then terminates the program.
  class [[nodiscard]] guard {
   public:
    guard() noexcept = default;
    explicit guard(lock& l) noexcept : l_(&l) {}  // adopts a held lock
    guard(guard&& o) noexcept : l_(std::exchange(o.l_, nullptr)) {}
    guard& operator=(guard&& o) noexcept {
      if (this != &o) {
        unlock();
        l_ = std::exchange(o.l_, nullptr);
      }
      return *this;
    }
    ~guard() { unlock(); }

    bool owns_lock() const noexcept { return l_ != nullptr; }
    /// Releases now (no-op when the guard owns nothing).
    void unlock() {
      if (l_ != nullptr) std::exchange(l_, nullptr)->release();
    }

   private:
    lock* l_ = nullptr;
  };

  /// co_await l.scoped(): acquire(), then a guard.
  class [[nodiscard]] scoped_awaitable : public acquire_awaitable {
   public:
    explicit scoped_awaitable(lock& l) noexcept : acquire_awaitable(l), l_(&l) {}
    guard await_resume() {
      acquire_awaitable::await_resume();
      return guard(*l_);
    }

   private:
    lock* l_;
  };

  lock() = default;
  lock(const lock&) = delete;
  lock& operator=(const lock&) = delete;

  [[nodiscard]] acquire_awaitable acquire() noexcept { return acquire_awaitable(*this); }
  [[nodiscard]] scoped_awaitable scoped() noexcept { return scoped_awaitable(*this); }
  void release();
  bool locked() const;

 private:
  friend struct detail::sync_access;

  mutable std::mutex mutex_;
  bool locked_ = false;  // with waiters queued it is always true (ownership is handed over)
  detail::wait_list waiters_;
};

}  // namespace baton
