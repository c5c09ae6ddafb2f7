// SPDX-License-Identifier: BSL-1.0
// The state every spawned task has, and the scheduler calls templates need.
#pragma once

// Who points to whom (runtime/loop.cpp owns the loop and has the full picture):
//
//   loop ── ready queue ──▶ task_base ──▶ frames (root frame → nested frames, one chain)
//    │                       │  is-a context_cell (the task's own context, one allocation)
//    │                       └─ ctx() ─▶ context_cell it runs in (itself, or a shared one)
//    └─ live list of every unfinished task (introspection, shutdown)
//
//   thread ── current_cell ──▶ ctx() of the task running on it (set on resume, cleared on suspend)
//          └─ current_worker ──▶ the loop thread it is (which loop, which task runs now)
//
// A task is resumed only through resume() below, which enters its context (so a task never
// runs on two threads at once: entering is exclusive) and makes it current.

#include <baton/detail/context_map.hpp>
#include <baton/detail/frame_cache.hpp>
#include <baton/errors.hpp>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>

namespace baton::detail {

class loop;
struct task_base;

/// One kind of suspension point: what it is called (introspection) and what cancel() does to a
/// task suspended there: e.g. emit an Asio cancellation signal, unlink a waiter. `cancel` runs
/// under the task's cancel lock, at most once per suspension, and must not block. A kind whose
/// `cancel` is null waits for another task, `arg`: cancel() then cancels that task after
/// releasing this one's lock (cancelling under it could come back: A awaits B awaits A).
/// Kinds are static objects: a task stores a pointer, not a name and a function.
struct await_kind {
  const char* what;
  void (*cancel)(task_base* t, void* arg) noexcept;  // null: arg is the awaited task
};

/// Where a task is suspended: its kind and the awaiter's argument (set by arm(), cleared by
/// disarm(); both stay readable while the task is suspended, also after cancel() fired).
struct cancel_hook {
  const await_kind* kind = nullptr;
  void* arg = nullptr;
};

/// Where a task is in a wait on a synchronisation primitive (see wait_list.hpp).
enum class wait_state : std::uint8_t { idle, taken, queued, granted, removed };

/// Something waiting for a task to finish: notify() runs once, on the finishing thread.
struct waiter {
  waiter* next = nullptr;
  void (*notify)(waiter* self) noexcept = nullptr;
};

enum class task_status : std::uint8_t { created, scheduled, running, suspended, done };

struct task_base : context_cell {
  task_base() noexcept;
  ~task_base() override;

  /// Where it runs: its own cell (this), or a shared context given to spawn() (retained).
  /// A task in a shared context never enters its own cell, so that cell's root slot, unused,
  /// holds the shared cell: no separate pointer in every task. Which of the two it is, is
  /// shared_ctx_bit of cancel_bits, set before the task starts and never changed: any thread
  /// may ask, while the task itself rewrites root with every set() in its own context.
  context_cell* ctx() const noexcept {
    if ((cancel_bits.load(std::memory_order_relaxed) & shared_ctx_bit) == 0) {
      return const_cast<task_base*>(this);
    }
    return reinterpret_cast<context_cell*>(root);  // immutable once the task started
  }
  /// Makes the task run in `shared` (already retained for it). Only before the task starts.
  void run_in(context_cell* shared) noexcept {
    root = reinterpret_cast<map_node*>(shared);
    cancel_bits.fetch_or(shared_ctx_bit, std::memory_order_relaxed);
  }

  loop* owner_loop = nullptr;
  // The innermost frame to resume next. Until the first step (status created or scheduled) it
  // is the root frame, which is all a task that never runs has to destroy; afterwards the
  // root frame is destroyed by finish(), which gets it from the root's final awaiter.
  std::coroutine_handle<> resume_point;
  // The ready-queue link (loop's lock), or the forward link of the wait list the task is
  // queued on (that primitive's mutex): a queued task is not ready, and a task waits on one
  // thing at a time, so the two never overlap. The wait node is thus part of the task.
  task_base* next_ready = nullptr;
  task_base* live_prev = nullptr;  // live-list links (loop's lock)
  task_base* live_next = nullptr;
  // One slot, two uses that never overlap. While the task is queued on a wait list: that
  // list's back link (wait_list switches the member on push and unlink). Otherwise: how it
  // failed, if it did. A failing frame parks its exception here and its awaiter takes it at
  // once, with no suspension between, so a queued task never has a failure in flight.
  union {
    std::exception_ptr error;
    task_base* wait_prev;
  };
  // Before the task finishes: 0 (nobody waits) or the newest waiter* (a lock-free stack of
  // 8-aligned nodes). Once it finished: finished_bit, plus cancelled_bit if it finished by
  // cancellation, plus retrieved_bit once an awaiter took its error.
  std::atomic<std::uintptr_t> waiters{0};
  static constexpr std::uintptr_t finished_bit = 1, cancelled_bit = 2, retrieved_bit = 4;
  cancel_hook hook;  // where it is suspended (under the cancel lock; see cancel_hook)
  std::uint32_t cancel_requests = 0;  // asyncio's num_cancels_requested (under the cancel lock)
  // The loop generation is context_cell::loop_generation (it fills the padding after refs).
  std::atomic<task_status> status{task_status::created};
  // The cancel lock and the two flags it guards, in one byte (see cancel_guard): pending is
  // also read without the lock on fast paths. shared_ctx_bit (see ctx()) is set before the
  // task starts and never changes, so the lock holder's write-back keeps it as it is.
  std::atomic<std::uint8_t> cancel_bits{0};
  static constexpr std::uint8_t lock_bit = 1, pending_bit = 2, hook_fired_bit = 4,
                                shared_ctx_bit = 8;
  bool named = false;                  // has an entry in the name table (only named tasks pay)
  wait_state wait = wait_state::idle;  // its current wait (the primitive's mutex)

  bool done() const noexcept {
    return (waiters.load(std::memory_order_acquire) & finished_bit) != 0;
  }
  /// Finished by cancellation (cancelled_error escaped it, or it was cancelled unstarted).
  bool cancelled() const noexcept {
    return (waiters.load(std::memory_order_acquire) & cancelled_bit) != 0;
  }
  /// A cancellation is owed and not yet delivered (relaxed: a racing cancel() is simply seen
  /// at the next suspension point; under the cancel lock use cancel_guard::pending()).
  bool cancel_pending() const noexcept {
    return (cancel_bits.load(std::memory_order_relaxed) & pending_bit) != 0;
  }

  /// Moves the root frame's result into the typed state; called once when the root finishes.
  virtual void take_result(std::coroutine_handle<> root) noexcept = 0;
};

/// Holds a task's cancel lock (a spinlock: held for a few instructions, never while blocking)
/// and, while held, the flags it guards. The holder changes them in its copy and stores them
/// with the unlock; that is safe because every other writer of cancel_bits only tries to set
/// lock_bit, which changes nothing while the lock is held (run_in() sets shared_ctx_bit before
/// the task is published, so before anyone can lock it).
class cancel_guard {
 public:
  explicit cancel_guard(task_base* t) noexcept;
  ~cancel_guard() { t_->cancel_bits.store(bits_, std::memory_order_release); }
  cancel_guard(const cancel_guard&) = delete;
  cancel_guard& operator=(const cancel_guard&) = delete;

  bool pending() const noexcept { return (bits_ & task_base::pending_bit) != 0; }
  void set_pending(bool on) noexcept { set(task_base::pending_bit, on); }
  /// cancel() ran the hook's cancel during this suspension (arm() resets it).
  bool hook_fired() const noexcept { return (bits_ & task_base::hook_fired_bit) != 0; }
  void set_hook_fired(bool on) noexcept { set(task_base::hook_fired_bit, on); }

 private:
  void set(std::uint8_t bit, bool on) noexcept {
    bits_ = static_cast<std::uint8_t>(on ? bits_ | bit : bits_ & ~bit);
  }
  task_base* t_;
  std::uint8_t bits_;  // the flags without lock_bit
};

/// The loop thread the caller runs on, or nullptr (constinit: one TLS load).
struct worker;
[[gnu::tls_model("initial-exec")]] extern constinit thread_local worker* current_worker;

/// The task whose step runs on this thread now, or nullptr: set by the loop around every step.
/// A task's frames, and every awaiter they await, run only inside one of its steps, so for them
/// this is "my task" (frames need not store their task: 8 bytes less in every frame).
[[gnu::tls_model("initial-exec")]] extern constinit thread_local task_base* running_task;

/// The loop of the calling thread; throws baton::runtime_error naming `what` outside a loop.
loop& running_loop(const char* what);
loop* running_loop_or_null() noexcept;
/// The generation of loop l (its key for exception reports).
std::uint32_t loop_generation_of(const loop& l) noexcept;

/// Gives t a name (introspection, error reports). Names live in a table beside the tasks, so
/// an unnamed task pays nothing for the feature.
void set_task_name(task_base* t, std::string name);

/// Registers t with the loop and schedules its first step. t->ctx must be set.
void start(loop& l, task_base* t);

/// Makes t ready to run again at t->resume_point (from a loop thread or any thread).
void schedule(task_base* t) noexcept;

/// Requests cancellation (asyncio's Task.cancel()); false when t already finished.
bool cancel(task_base* t) noexcept;

/// Suspension protocol for awaiters. arm(): under the cancel lock, unless cancellation is
/// pending, records the resume point, installs the hook (kind, arg) and calls start(); returns
/// false (do not suspend) when cancellation was pending or start() returned false.
template <class Start>
bool arm(task_base* t, std::coroutine_handle<> h, const await_kind& kind, void* arg,
         Start&& start) {
  cancel_guard g(t);
  if (g.pending()) return false;
  t->resume_point = h;
  t->hook = {&kind, arg};
  g.set_hook_fired(false);
  if (!start()) {
    t->hook = {};
    return false;
  }
  return true;
}

/// The kind of a task suspended in `co_await handle` (cancelling it cancels the awaited task).
inline constexpr await_kind task_await_kind{"task", nullptr};

/// After resumption: removes the hook, and throws cancelled_error when cancellation is pending
/// (consuming it, as asyncio does).
void disarm(task_base* t);

/// Throws cancelled_error if cancellation is pending for t (consumes it).
void throw_if_cancel_pending(task_base* t);

/// Called by a root frame's final awaiter: records the result, wakes waiters, returns the
/// coroutine to continue with (always noop: the scheduler regains control).
std::coroutine_handle<> finish(task_base* t, std::coroutine_handle<> root) noexcept;

/// Marks t finished (its result or error already recorded) and wakes its waiters.
void complete(task_base* t) noexcept;

/// Registers w to be notified when t finishes; false when t already finished.
bool add_waiter(task_base* t, waiter* w) noexcept;

/// Hands a failure nobody retrieved to the exception handler of loop `generation` (stderr
/// when that loop is gone or has none). Never called with a lock held.
void report_unretrieved(std::uint32_t generation, const unhandled_failure& f) noexcept;

/// The executor of the running loop (type-erased to keep Asio out of this header).
void retain_task(task_base* t) noexcept;
void release_task(task_base* t) noexcept;

}  // namespace baton::detail
