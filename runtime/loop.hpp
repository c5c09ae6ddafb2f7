// SPDX-License-Identifier: BSL-1.0
// The loop (private): the ready queue, the live list, the Asio io_context and its threads.
#pragma once

#include <baton/context.hpp>
#include <baton/detail/task_base.hpp>
#include <baton/run.hpp>

#include "blocking_pool.hpp"
#include "timer_wheel.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <array>
#include <condition_variable>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace baton::detail {

namespace asio = boost::asio;

class fiber_core;

/// Outlives the loop; loop_handle posts through it only while the loop accepts work.
struct loop_gate {
  std::mutex mutex;
  loop* open = nullptr;   // nullptr once the loop's main task finished (no new work)
  loop* alive = nullptr;  // nullptr once the loop is being destroyed (no posts at all)
};

/// One loop thread.
struct worker {
  loop* lp = nullptr;
  task_base* just_finished = nullptr;   // set by finish() for resume() to release
  fiber_core* current_fiber = nullptr;  // the fiber running on this thread (fiber.cpp)
  frame_cache frames;                   // installed as current_frames
  ref_cache refs;                       // map references kept for the next spawn (context_map.hpp)
};

/// Makes the calling thread a thread of loop l while it lives: current_worker, and its ref
/// cache and frame cache installed (the ref cache flushed on the way out).
class worker_scope {
 public:
  worker_scope(worker& w, loop* l) noexcept;
  ~worker_scope();
  worker_scope(const worker_scope&) = delete;
  worker_scope& operator=(const worker_scope&) = delete;

 private:
  worker& w_;
  ref_cache* prev_cache_;
  frame_cache* prev_frames_;
};

class loop {
 public:
  explicit loop(const run_options& opts);
  ~loop();
  loop(const loop&) = delete;
  loop& operator=(const loop&) = delete;

  void start(task_base* t);
  void push(task_base* t) noexcept;  // from a thread of this loop
  void on_finished(task_base* t) noexcept;
  void run_main(task_base* main);
  asio::io_context& io() noexcept { return ioc_; }
  /// The loop's timers (sleep, wait_for): add, cancel, fire-due (timer_wheel.hpp).
  timer_queue& timers() noexcept { return timers_; }
  /// The blocking pool (started on first use; joined by shutdown()).
  blocking_pool& blocking_jobs();
  /// Makes t ready from a thread that is not one of this loop's: lock-free, and one Asio post
  /// per batch (the push that finds the queue empty posts the drain; everything pushed before
  /// the drain runs goes in with it). The blocking pool's completions come back this way
  /// (wake_from_pool). Only while the loop is alive: callers are threads the loop joins before
  /// it ends. Scheduler work (issue 11, "sched"): keep this entry point and its name; feed
  /// your injection queue from it or make it that queue.
  void push_remote(task_base* t) noexcept;
  std::uint32_t generation() const noexcept { return generation_; }
  const std::shared_ptr<loop_gate>& gate() const noexcept { return gate_; }
  /// False once the loop is past its last task: jobs still queued are refused.
  bool accepting() const noexcept { return accepting_.load(std::memory_order_acquire); }

  template <class F>
  void for_each_live(F&& f) {
    std::lock_guard lock(mutex_);
    for (task_base* t = live_head_; t != nullptr; t = t->live_next) f(t);
  }

 private:
  void work(worker& w, const std::function<bool()>& until);
  task_base* pop() noexcept;
  void resume(worker& w, task_base* t) noexcept;
  void context_busy(task_base* t) noexcept;
  task_base* run_step(worker& w, task_base* t) noexcept;
  void wake_all() noexcept;
  /// Runs the Asio handlers that are ready (or, with wait, one, waiting for it), each in an
  /// empty context: see forget_handler_context(). Every handler run of the loop goes here.
  void run_handlers(bool wait);
  void cancel_all() noexcept;
  void shutdown();
  void drain_remote() noexcept;
  void fail_unrunnable(task_base* t) noexcept;
  task_base* cancel_before_start(task_base* t) noexcept;

  asio::io_context ioc_;
  timer_queue timers_{ioc_};  // after ioc_: its driver timer dies first
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_guard_;
  const unsigned threads_;
  const std::size_t blocking_threads_;
  std::uint32_t generation_ = 0;  // this loop's key in the handler registry

  // Ready queue and live list. One mutex; with one loop thread it is never contended.
  std::mutex mutex_;
  task_base* ready_head_ = nullptr;
  task_base* ready_tail_ = nullptr;
  task_base* live_head_ = nullptr;
  std::size_t live_count_ = 0;
  std::atomic<unsigned> idle_{0};
  std::atomic<bool> stop_workers_{false};
  task_base* main_ = nullptr;
  std::uintptr_t caller_tag_ = 0;  // the thread blocked in run()
  std::mutex events_mutex_;        // main finished / nothing live (threaded loops)
  std::condition_variable events_;

  std::shared_ptr<loop_gate> gate_;
  std::atomic<bool> accepting_{true};
  void close_gate() noexcept;

  // Tasks pushed by push_remote(), newest first (a lock-free stack through next_ready).
  std::atomic<task_base*> remote_{nullptr};

  std::mutex pool_mutex_;  // starting and joining the pool
  std::optional<blocking_pool> pool_;
  std::atomic<blocking_pool*> pool_ready_{nullptr};  // &*pool_ once started: no lock per job
  std::vector<std::thread> extra_threads_;
};

void default_report(const unhandled_failure& f) noexcept;

/// After a plain Asio handler returns on a loop thread: empties the thread's base context of
/// whatever the handler set (and forgets its tokens), so the next handler starts empty.
void forget_handler_context() noexcept;

}  // namespace baton::detail
