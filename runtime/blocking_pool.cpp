// SPDX-License-Identifier: BSL-1.0
// The loop's blocking pool: lock-free submission, one-at-a-time takes, spinning-thread wake-ups.

#include "blocking_pool.hpp"

#include "loop.hpp"

namespace baton::detail {

blocking_pool::blocking_pool(std::size_t max_threads)
    : max_threads_(max_threads == 0 ? 1 : max_threads) {}

blocking_pool::~blocking_pool() { join(); }

std::size_t blocking_pool::threads() const noexcept {
  std::lock_guard lock(threads_mutex_);
  return threads_.size();
}

void blocking_pool::submit(blocking_job* j) noexcept {
  // seq_cst (this increment, the push and the searching_ load below): pairs with a worker's
  // "searching_ down, then look at pending_" (see work()). Either the worker sees the job, or
  // this thread sees that nobody is searching and wakes someone.
  pending_.fetch_add(1, std::memory_order_seq_cst);
  blocking_job* head = inbox_.load(std::memory_order_relaxed);
  do {
    j->next = head;
    // seq_cst, which includes release: the job's fields (and everything the submitter wrote
    // for it) are visible to the worker that takes it (acquire exchange in take()).
  } while (
      !inbox_.compare_exchange_weak(head, j, std::memory_order_seq_cst, std::memory_order_relaxed));
  if (searching_.load(std::memory_order_seq_cst) == 0) wake_one();
}

void blocking_pool::wake_one() noexcept {
  // seq_cst: after submit()'s seq_cst operations, pairs with work()'s "sleeping_ up, then
  // searching_ down".
  if (sleeping_.load(std::memory_order_seq_cst) != 0) {
    std::lock_guard lock(sleep_mutex_);
    // Relaxed: sleepers change the count under sleep_mutex_, which this holds.
    if (wakeups_ < sleeping_.load(std::memory_order_relaxed)) {
      ++wakeups_;
      // The woken worker counts as searching from now: submits until it finds a job skip the
      // wake-up (seq_cst, as every change of searching_: submit() reads it after its push).
      searching_.fetch_add(1, std::memory_order_seq_cst);
      sleep_cv_.notify_one();
      return;
    }
    // Every sleeper already has a wake-up on its way: one of them takes this job.
    return;
  }
  std::lock_guard lock(threads_mutex_);
  if (joined_ || threads_.size() >= max_threads_) return;  // a busy worker takes it next
  searching_.fetch_add(1, std::memory_order_seq_cst);      // the new thread looks (seq_cst: ditto)
  try {
    threads_.emplace_back([this] { work(); });
  } catch (...) {
    // Out of threads: the workers that exist take the job when they are done (seq_cst: ditto).
    searching_.fetch_sub(1, std::memory_order_seq_cst);
  }
}

// seq_cst: read after a change of searching_ or sleeping_, with which it must not be reordered
// (see work() and submit()).
bool blocking_pool::maybe_queued() const noexcept {
  return pending_.load(std::memory_order_seq_cst) > 0;
}

blocking_job* blocking_pool::take() noexcept {
  std::lock_guard lock(take_mutex_);
  if (head_ == nullptr) {
    // acquire: pairs with the submitters' CAS; the jobs' fields are visible from here on.
    blocking_job* list = inbox_.exchange(nullptr, std::memory_order_acquire);
    if (list == nullptr) return nullptr;
    tail_ = list;
    blocking_job* rev = nullptr;  // newest first -> oldest first
    while (list != nullptr) {
      blocking_job* next = list->next;
      list->next = rev;
      rev = list;
      list = next;
    }
    head_ = rev;
  }
  blocking_job* j = head_;
  head_ = j->next;
  if (head_ == nullptr) tail_ = nullptr;
  pending_.fetch_sub(1, std::memory_order_relaxed);  // only a hint for sleepers and wakers
  return j;
}

void blocking_pool::work() noexcept {
  bool searching = true;  // counted in searching_ by whoever started or woke this thread
  unsigned idle_rounds = 0;
  for (;;) {
    if (blocking_job* j = take()) {
      if (searching) {
        searching = false;
        // The last searcher found a job: if more are queued, hand the search on, so they do
        // not wait behind this one (it may block for a long time). seq_cst: as submit()'s.
        if (searching_.fetch_sub(1, std::memory_order_seq_cst) == 1 && maybe_queued()) {
          wake_one();
        }
      }
      idle_rounds = 0;
      j->run(j);
      continue;
    }
    if (!searching) {
      // Announce the search, then look again: a submit that sees this increment may skip its
      // wake-up, so this thread must find that submit's job; the take() after it does.
      searching = true;
      searching_.fetch_add(1, std::memory_order_seq_cst);  // seq_cst: before the take() below
      continue;
    }
    if (maybe_queued() || ++idle_rounds < 64) {
      // A job is being pushed, or a short spin: cheaper than sleeping and being woken when the
      // loop submits the next job within a microsecond or so.
      std::this_thread::yield();
      continue;
    }
    idle_rounds = 0;
    std::unique_lock lock(sleep_mutex_);
    if (stop_ && !maybe_queued()) {
      searching_.fetch_sub(1, std::memory_order_seq_cst);  // seq_cst: as every change of it
      return;
    }
    // sleeping_ up before searching_ down (seq_cst both): a submit that sees searching_ == 0
    // sees this thread asleep and queues a wake-up under the mutex this thread holds.
    sleeping_.fetch_add(1, std::memory_order_seq_cst);
    searching_.fetch_sub(1, std::memory_order_seq_cst);
    searching = false;
    if (maybe_queued()) {  // submitted between the last take and the decrement
      // seq_cst: as every change of the two counts (submit() and wake_one() read them).
      sleeping_.fetch_sub(1, std::memory_order_seq_cst);
      searching_.fetch_add(1, std::memory_order_seq_cst);
      searching = true;
      continue;
    }
    sleep_cv_.wait(lock, [this] { return wakeups_ != 0 || stop_; });
    // seq_cst: as every change of the counts.
    sleeping_.fetch_sub(1, std::memory_order_seq_cst);
    if (wakeups_ != 0) {
      --wakeups_;  // the waker counted this thread in searching_ already
    } else {
      searching_.fetch_add(1, std::memory_order_seq_cst);  // stop_: one last look
    }
    searching = true;
  }
}

void blocking_pool::join() noexcept {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(threads_mutex_);
    if (joined_) return;
    joined_ = true;
    threads.swap(threads_);
  }
  {
    std::lock_guard lock(sleep_mutex_);
    stop_ = true;
  }
  sleep_cv_.notify_all();
  for (auto& t : threads) t.join();
  // A job submitted after the last thread left (none should be: the loop joins the pool only
  // once it has no task left to submit one) runs here rather than being lost.
  while (blocking_job* j = take()) j->run(j);
}

// ---------------------------------------------------------------------------------------------
// the calls header templates make

void submit_blocking(loop& l, blocking_job* j) { l.blocking_jobs().submit(j); }

void wake_from_pool(task_base* t) noexcept { t->owner_loop->push_remote(t); }

}  // namespace baton::detail
