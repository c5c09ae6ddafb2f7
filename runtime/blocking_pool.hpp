// SPDX-License-Identifier: BSL-1.0
// The loop's blocking pool (private): where to_thread's jobs run. docs/design/blocking-pool.md.
#pragma once

// Jobs are intrusive (detail::blocking_job, embedded in to_thread's per-call state), so handing
// one over allocates nothing. Submitters never take a lock: a job is pushed onto a lock-free
// stack (the inbox). Workers take jobs one at a time from a FIFO that only they touch, under
// a mutex held for a few instructions; a worker that finds that FIFO empty moves the whole
// inbox into it at once (reversed: jobs start in the order they were submitted).
//
// Wake-ups follow Go's spinning-thread rule: a submit wakes a sleeping worker only when no
// worker is already looking for work, and the woken worker counts as looking from the moment
// it is woken. So while workers are busy, or one is already on its way, submitting costs one
// CAS and two loads; a burst of submits wakes one worker, which wakes the next when it takes
// a job and sees more queued (a queued job never waits behind a blocking one while a worker
// sleeps). Threads are started on demand, up to the pool's size, when no worker is idle.

#include <baton/detail/blocking_job.hpp>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace baton::detail {

class blocking_pool {
 public:
  explicit blocking_pool(std::size_t max_threads);
  ~blocking_pool();  // join()
  blocking_pool(const blocking_pool&) = delete;
  blocking_pool& operator=(const blocking_pool&) = delete;

  /// Queues j (any thread). Jobs submitted before join() all run.
  void submit(blocking_job* j) noexcept;
  /// Runs every job queued, then stops and joins the threads. Idempotent.
  void join() noexcept;

  /// Threads started so far (tests, introspection).
  std::size_t threads() const noexcept;

 private:
  void work() noexcept;
  blocking_job* take() noexcept;
  void wake_one() noexcept;
  bool maybe_queued() const noexcept;

  const std::size_t max_threads_;

  // Submitted, not yet moved to queue_: a lock-free stack, newest first.
  std::atomic<blocking_job*> inbox_{nullptr};
  // Submitted and not yet taken (counted before the push, so it may run ahead of the inbox by
  // a job in flight: "maybe queued" when non-zero).
  std::atomic<std::int64_t> pending_{0};

  // The workers' FIFO (take_mutex_).
  std::mutex take_mutex_;
  blocking_job* head_ = nullptr;
  blocking_job* tail_ = nullptr;

  // Workers awake and looking for a job, and workers asleep. See docs/design/blocking-pool.md
  // for why a submit that sees searching_ > 0 may skip the wake-up.
  std::atomic<std::uint32_t> searching_{0};
  std::atomic<std::uint32_t> sleeping_{0};

  // Sleeping (sleep_mutex_): a worker waits for a wake-up token or stop_.
  std::mutex sleep_mutex_;
  std::condition_variable sleep_cv_;
  std::uint32_t wakeups_ = 0;
  bool stop_ = false;

  mutable std::mutex threads_mutex_;  // starting threads, join()
  std::vector<std::thread> threads_;
  bool joined_ = false;
};

}  // namespace baton::detail
