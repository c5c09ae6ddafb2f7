// SPDX-License-Identifier: BSL-1.0
// The state every spawned task has, and the scheduler calls templates need.
#pragma once

// Who points to whom (runtime/loop.cpp owns the loop and has the full picture):
//
//   loop ── ready queue ──▶ task_base ──▶ frames (root frame → nested frames, one chain)
//    │                       │  is-a context_cell (the task's own context, one allocation)
//    │                       └─ ctx ──▶ context_cell it runs in (itself, or a shared one)
//    └─ live list of every unfinished task (introspection, shutdown)
//
//   thread ── current_cell ──▶ ctx of the task running on it (set on resume, cleared on suspend)
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
  task_base();
  ~task_base() override;

  context_cell* ctx;  // where it runs: this, or a shared context (retained)
  loop* owner_loop = nullptr;
  // The innermost frame to resume next. Until the first step (status created or scheduled) it
  // is the root frame, which is all a task that never runs has to destroy; afterwards the
  // root frame is destroyed by finish(), which gets it from the root's final awaiter.
  std::coroutine_handle<> resume_point;
  // The ready-queue link (loop's lock), or the link of the wait list the task is queued on
  // (that primitive's mutex): a queued task is not ready, and a task waits on one thing at a
  // time, so the two never overlap. The wait node is thus part of the task, not of its frame.
  task_base* next_ready = nullptr;
  task_base* wait_prev = nullptr;  // the other wait-list link
  task_base* live_prev = nullptr;  // live-list links (loop's lock)
  task_base* live_next = nullptr;
  std::exception_ptr error;  // how it failed, if it did
  // 0: nobody waits, 1: finished, otherwise the newest waiter* (a lock-free stack).
  std::atomic<std::uintptr_t> waiters{0};
  cancel_hook hook;  // where it is suspended (under the cancel lock; see cancel_hook)
  std::uint32_t cancel_requests = 0;  // asyncio's num_cancels_requested (under the cancel lock)
  // The loop generation is context_cell::loop_generation (it fills the padding after refs).
  std::atomic<task_status> status{task_status::created};
  // Cancellation: pending is read without the lock on fast paths; everything else under it.
  std::atomic<bool> cancel_pending{false};
  std::atomic_flag cancel_lock = ATOMIC_FLAG_INIT;
  bool cancelled = false;   // finished by cancelled_error
  bool hook_fired = false;  // cancel() ran hook.kind->cancel (cancel lock)
  bool named = false;       // has an entry in the name table (only named tasks pay for a name)
  wait_state wait = wait_state::idle;        // its current wait (the primitive's mutex)
  std::atomic<bool> error_retrieved{false};  // any awaiter on any thread may set it

  bool done() const noexcept { return waiters.load(std::memory_order_acquire) == 1; }

  /// Moves the root frame's result into the typed state; called once when the root finishes.
  virtual void take_result(std::coroutine_handle<> root) noexcept = 0;
};

/// Holds a task's cancel lock (a spinlock: held for a few instructions, never while blocking).
class cancel_guard {
 public:
  explicit cancel_guard(task_base* t) noexcept;
  ~cancel_guard();
  cancel_guard(const cancel_guard&) = delete;
  cancel_guard& operator=(const cancel_guard&) = delete;

 private:
  task_base* t_;
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
  if (t->cancel_pending.load(std::memory_order_relaxed)) return false;
  t->resume_point = h;
  t->hook = {&kind, arg};
  t->hook_fired = false;
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
