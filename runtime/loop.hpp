// SPDX-License-Identifier: BSL-1.0
// The loop (private): the ready queues, the live list, the Asio io_context and its threads.
#pragma once

#include <baton/context.hpp>
#include <baton/detail/park_hook.hpp>
#include <baton/detail/task_base.hpp>
#include <baton/run.hpp>

#include "blocking_pool.hpp"
#include "debug.hpp"
#include "run_queue.hpp"
#include "timer_wheel.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <array>
#include <chrono>
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

/// One loop thread. The fields after `refs` serve a threaded loop's scheduler only
/// (runtime/scheduler.cpp, docs/design/scheduler.md); other threads read those marked so.
struct worker {
  loop* lp = nullptr;
  task_base* just_finished = nullptr;   // set by finish() for resume() to release
  fiber_core* current_fiber = nullptr;  // the fiber running on this thread (fiber.cpp)
  frame_cache frames;                   // installed as current_frames
  ref_cache refs;                       // map references kept for the next spawn (context_map.hpp)

  unsigned index = 0;                  // in the loop's workers
  std::atomic<std::uintptr_t> tag{0};  // thread_tag() of its thread: a held cell's owner word
  task_base* yielded = nullptr;  // scheduled itself during its step: queued when the step ends
  unsigned lifo_streak = 0;      // steps in a row taken from the LIFO slot (bounded)
  std::uint32_t tick = 0;        // steps taken, for the periodic injection and Asio checks
  std::uint32_t rng = 1;         // where a search starts (xorshift)
  bool searching = false;        // counted in the loop's num_searching_
  std::vector<std::uint64_t> seen_steps;  // each victim's `steps` when its LIFO slot was seen

  // Read by other workers:
  alignas(64) std::atomic<task_base*> lifo{nullptr};  // the task woken or spawned last
  std::atomic<std::uint64_t> steps{0};  // bumped by the owner per step: a thief sees it stuck
  run_queue queue;
  // Tasks whose context this worker held when another worker popped them: a stack through
  // next_ready, pushed by any worker, drained by this one after each step.
  alignas(64) std::atomic<task_base*> handoff{nullptr};
  std::atomic<std::uint32_t> permit{0};  // 1: unparked (set under park_mutex)
  std::atomic<bool> driving{false};      // parked in the io_context rather than on park_cv
  std::mutex park_mutex;
  std::condition_variable park_cv;
};

/// When a loop last let Asio run while tasks were ready, or before a park in its park hook,
/// loop-wide (see io_check_due()).
struct io_turn {
  static constexpr auto gap = std::chrono::microseconds(50);
  std::atomic<std::chrono::steady_clock::rep> last{0};
  /// When io_check_due() says yes again.
  std::chrono::steady_clock::time_point next() const noexcept {
    // Relaxed: as in io_check_due().
    return std::chrono::steady_clock::time_point(
               std::chrono::steady_clock::duration(last.load(std::memory_order_relaxed))) +
           gap;
  }
};

/// Whether a worker that has tasks ready should let Asio run now. It is asked every 61-64
/// steps (loop::work, loop::after_step) and before a park in a park hook (loop::park_in_hook),
/// and says yes to one asker when 50 us have passed since the loop's last yes: Asio's poll runs
/// the reactor, an epoll_wait system call of about 1 us on this machine, so polling on every
/// 64th step of 20 ns steps would double their cost. The price is latency: while tasks stay
/// ready, a socket or timer completion waits at most 50 us plus 64 steps
/// (docs/design/scheduler.md, "Asio's turn"). The turn is the loop's, not each worker's, so
/// that the rate of polls under load does not grow with the number of workers. The clock read
/// is paid once per 64 steps; the compare-and-swap once per 50 us.
inline bool io_check_due(io_turn& turn) noexcept {
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  // Relaxed: a time stamp that orders nothing else (poll_io()'s io_owner_ orders the handlers).
  auto last = turn.last.load(std::memory_order_relaxed);
  if (now - last < std::chrono::steady_clock::duration(io_turn::gap).count()) return false;
  // One winner per gap: the others see the new stamp and keep running their tasks.
  return turn.last.compare_exchange_strong(last, now, std::memory_order_relaxed);
}

/// One shard of the live list: the tasks started on one worker (a threaded loop has one per
/// worker, so starting and finishing a task locks a line that stays on its thread). Aligned to
/// a cache line: two workers' shards side by side would make every spawn and every finish
/// write a line the other worker writes too.
struct alignas(64) live_shard {
  spin_mutex mutex;
  task_base* head = nullptr;
  std::size_t count = 0;
};

/// Locks a shard only when the loop has several threads.
class shard_lock {
 public:
  shard_lock(live_shard& s, bool multi) noexcept : m_(multi ? &s.mutex : nullptr) {
    if (m_ != nullptr) m_->lock();
  }
  ~shard_lock() {
    if (m_ != nullptr) m_->unlock();
  }
  shard_lock(const shard_lock&) = delete;
  shard_lock& operator=(const shard_lock&) = delete;

 private:
  spin_mutex* m_;
};

/// Queues a list of tasks of loop l linked through next_ready (first to last, n of them) from
/// any thread, through the injection queue: one lock and at most one wake-up for the list.
/// Nothing happens once the loop is being destroyed.
void schedule_injected(loop& l, task_base* first, task_base* last, std::size_t n) noexcept;

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
  /// From any thread: queues the tasks of a list linked through next_ready (all of this loop,
  /// none queued elsewhere) in the injection queue, under the gate's mutex, which the caller
  /// holds while gate().alive is this loop. One lock and at most one wake-up per list.
  void inject_locked(task_base* first, task_base* last, std::size_t n) noexcept;
  void on_finished(task_base* t) noexcept;
  void run_main(task_base* main);
  asio::io_context& io() noexcept { return ioc_; }
  /// The loop's timers (sleep, wait_for): add, cancel, fire-due (timer_wheel.hpp).
  timer_queue& timers() noexcept { return timers_; }
  /// The blocking pool (started on first use; joined by shutdown()).
  blocking_pool& blocking_jobs();
  /// Makes t ready from a thread that is not one of this loop's: lock-free, and one Asio post
  /// per batch (the push that finds the stack empty posts the drain; everything pushed before
  /// the drain runs goes in with it). The blocking pool's completions come back this way
  /// (wake_from_pool). Only while the loop is alive: callers are threads the loop joins before
  /// it ends.
  void push_remote(task_base* t) noexcept;
  std::uint32_t generation() const noexcept { return generation_; }
  const std::shared_ptr<loop_gate>& gate() const noexcept { return gate_; }
  /// False once the loop is past its last task: jobs still queued are refused.
  // acquire: pairs with shutdown()'s release.
  bool accepting() const noexcept { return accepting_.load(std::memory_order_acquire); }
  /// Installs or removes the one-thread loop's park hook (detail/park_hook.hpp): false on a
  /// loop of several threads, or when another hook is installed. On the loop's thread.
  bool set_park_hook(park_hook* h) noexcept;
  /// Wakes the park hook, if any, for work queued through Asio: under gate_->mutex. The hook's
  /// next park lets Asio run first, whether or not its turn is due (park_in_hook()).
  void wake_hook_locked() noexcept {
    if (park_ != nullptr) {
      io_posted_ = true;
      park_->wake();
    }
  }
  /// Its debug-mode monitor, or nullptr when debug mode is off.
  debug_monitor* debug() const noexcept { return debug_.get(); }

  template <class F>
  void for_each_live(F&& f) {
    for (unsigned i = 0; i < shard_count(); ++i) {
      live_shard& s = shards_[i];
      std::lock_guard lock(s.mutex);
      for (task_base* t = s.head; t != nullptr; t = t->live_next) f(t);
    }
  }

 private:
  static constexpr std::uint64_t no_steps = ~std::uint64_t{0};  // see worker::seen_steps
  unsigned shard_count() const noexcept { return std::min(threads_, task_base::live_shards); }

  // One loop thread (runtime/loop.cpp): the FIFO ready queue, nothing shared.
  void work(worker& w, const std::function<bool()>& until);
  void park_in_hook();
  /// The longest a park in a park hook lasts: how late Asio's own events can be seen then.
  static constexpr auto hook_park_limit = std::chrono::milliseconds(5);
  /// Wakes the loop thread for work another thread queued: under gate_->mutex.
  void wake_locked() noexcept;
  /// When the loop's earliest timer (baton's timers, the cell-wait retry) is due.
  std::chrono::steady_clock::time_point next_deadline() noexcept;
  task_base* pop() noexcept;
  bool take_injected() noexcept;
  // Several loop threads (runtime/scheduler.cpp).
  void work_threaded(worker& w);
  void push_local(worker& w, task_base* t) noexcept;
  void push_ring(worker& w, task_base* t) noexcept;
  task_base* next_task(worker& w) noexcept;
  task_base* pop_injected(worker& w) noexcept;
  task_base* search(worker& w) noexcept;
  void after_step(worker& w) noexcept;
  void poll_io(worker& w) noexcept;
  bool start_searching(worker& w) noexcept;
  void stop_searching(worker& w) noexcept;
  void park(worker& w) noexcept;
  void notify_one() noexcept;
  void unpark(worker& w) noexcept;
  enum class visible { none, lifo_only, work };
  visible work_visible(const worker& w) const noexcept;
  void hand_off(worker& holder, task_base* t) noexcept;
  worker* worker_by_tag(std::uintptr_t tag) noexcept;
  void drain_workers() noexcept;
  void stop_workers() noexcept;
  // A task whose context a thread outside this loop holds: parked until a retry.
  void wait_for_cell(task_base* t) noexcept;
  void retry_cell_waiters() noexcept;

  void resume(worker& w, task_base* t) noexcept;
  bool context_busy(worker& w, task_base* t) noexcept;
  task_base* run_step(worker& w, task_base* t) noexcept;
  void wake_all() noexcept;
  /// Runs the Asio handlers that are ready (or, with wait, one, waiting for it), each in an
  /// empty context: see forget_handler_context(). Every handler run of the loop goes here.
  void run_handlers(bool wait);
  void cancel_all() noexcept;
  /// asyncio.run's ending, for one loop thread and for several: waits for main, closes the
  /// gate, cancels what is left and waits for it. wait_until(pred) returns once pred() holds.
  template <class WaitUntil>
  void finish_main(task_base* main, WaitUntil wait_until);
  void shutdown();
  void drain_remote() noexcept;
  void fail_unrunnable(task_base* t) noexcept;
  task_base* cancel_before_start(task_base* t) noexcept;
  bool nothing_live() noexcept;

  asio::io_context ioc_;
  timer_queue timers_{ioc_};  // after ioc_: its driver timer dies first
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_guard_;
  const unsigned threads_;
  const std::size_t blocking_threads_;
  std::uint32_t generation_ = 0;  // this loop's key in the handler registry

  // One loop thread: the ready queue, touched by that thread only.
  task_base* ready_head_ = nullptr;
  task_base* ready_tail_ = nullptr;
  // Several: a worker each (run queue, LIFO slot, hand-off stack), and what they share.
  std::vector<std::unique_ptr<worker>> workers_;
  bool threaded_ = false;  // workers_ run the tasks (false before they start and once joined)
  // The injection queue (guarded by gate_->mutex): tasks scheduled from outside the loop and
  // the overflow of full run queues. inject_len_ lets workers look without the lock.
  task_base* inject_head_ = nullptr;
  task_base* inject_tail_ = nullptr;
  std::atomic<std::size_t> inject_len_{0};
  bool io_posted_ = false;  // under gate_->mutex: wake_hook_locked() since the hook's last park
  // Idle workers: parked ones in sleepers_ (idle_mutex_), and how many are searching.
  std::mutex idle_mutex_;
  std::vector<unsigned> sleepers_;
  std::atomic<unsigned> num_searching_{0};
  std::atomic<unsigned> num_parked_{0};
  unsigned max_searching_ = 1;
  std::atomic<unsigned> io_owner_{0};  // 0, or 1 + the worker running Asio handlers now
  io_turn io_turn_;                    // when Asio last ran while tasks were ready
  std::atomic<bool> stop_workers_{false};
  // Tasks whose shared context a thread outside the loop holds, retried by a timer whose delay
  // doubles while they wait (cell_wait_mutex_).
  std::mutex cell_wait_mutex_;
  task_base* cell_wait_head_ = nullptr;
  std::chrono::microseconds cell_wait_delay_{0};
  std::chrono::steady_clock::time_point cell_wait_last_{};
  asio::steady_timer cell_wait_timer_{ioc_};
  // The live list, one shard per worker (shard 0 also for the thread in run()).
  std::unique_ptr<live_shard[]> shards_;
  std::atomic<bool> draining_{false};  // main finished: report the last live task
  task_base* main_ = nullptr;
  std::uintptr_t caller_tag_ = 0;  // the thread blocked in run()
  std::mutex events_mutex_;        // main finished / nothing live (threaded loops)
  std::condition_variable events_;

  std::shared_ptr<loop_gate> gate_;
  std::atomic<bool> accepting_{true};
  void close_gate() noexcept;

  // The park hook (one loop thread): written under gate_->mutex by the loop thread, read by it
  // without the lock and by other threads under it; hooked_ tells push_remote(), which takes
  // no lock, whether it must wake the hook.
  park_hook* park_ = nullptr;
  std::atomic<bool> hooked_{false};

  // Tasks pushed by push_remote(), newest first (a lock-free stack through next_ready).
  std::atomic<task_base*> remote_{nullptr};

  std::mutex pool_mutex_;  // starting and joining the pool
  std::optional<blocking_pool> pool_;
  std::atomic<blocking_pool*> pool_ready_{nullptr};  // &*pool_ once started: no lock per job
  std::vector<std::thread> extra_threads_;
  const std::unique_ptr<debug_monitor> debug_;  // null unless debug mode is on
};

void default_report(const unhandled_failure& f) noexcept;

/// After a plain Asio handler returns on a loop thread: empties the thread's base context of
/// whatever the handler set (and forgets its tokens), so the next handler starts empty.
void forget_handler_context() noexcept;

}  // namespace baton::detail
