// SPDX-License-Identifier: BSL-1.0
// The state every spawned task has, and the scheduler calls templates need.
#pragma once

// Who points to whom (runtime/loop.cpp owns the loop; its opening comment follows the context
// path from a resume to a get()):
//
//   loop ── ready queue ──▶ task_base ──▶ frames (root frame → nested frames, one chain)
//    │                       │  is-a context_cell (the task's own context, one allocation)
//    │                       └─ ctx() ─▶ context_cell it runs in (itself, or a shared one)
//    └─ live list of every unfinished task (introspection, shutdown)
//
//   thread ── current_cell ──▶ ctx() of the task running on it (set on resume, cleared on suspend)
//          ├─ running_task ──▶ that task (set around each step)
//          └─ current_worker ──▶ the loop thread it is (its loop, caches)
//
// A task is resumed only by loop::resume, which enters its context (so a task never runs on
// two threads at once: entering is exclusive) and makes it current. Cancellation is in
// detail/cancel.hpp.

#include <baton/detail/context_map.hpp>
#include <baton/detail/frame_cache.hpp>
#include <baton/errors.hpp>

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <string>

namespace baton::detail {

class loop;
struct task_base;

struct await_kind;  // detail/cancel.hpp

/// Where a task is suspended: its kind and the awaiter's argument (set by arm(), cleared by
/// disarm(); both stay readable while the task is suspended, also after cancel() fired).
/// See detail/cancel.hpp.
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

  /// Task states live in whole cache lines of their own (context_map.hpp, allocate_lines()): the
  /// loop thread that runs a task writes its state, and a neighbour sharing a line with it
  /// would be written by the thread running that neighbour. Sized: the deleting destructor of
  /// the final task_state<T> passes its own size. A state aligned beyond a line (a result type
  /// with alignas(128)) takes a heap block of its alignment.
  static void* operator new(std::size_t bytes) { return allocate_lines(bytes); }
  static void operator delete(void* p, std::size_t bytes) noexcept { free_lines(p, bytes); }
  static void* operator new(std::size_t bytes, std::align_val_t a) {
    return a <= line_alignment ? allocate_lines(bytes) : ::operator new(bytes, a);
  }
  static void operator delete(void* p, std::size_t bytes, std::align_val_t a) noexcept {
    if (a <= line_alignment) {
      free_lines(p, bytes);
    } else {
      ::operator delete(p, bytes, a);
    }
  }
  static constexpr std::align_val_t line_alignment{64};

  /// Where it runs: its own cell (this), or a shared context given to spawn().
  context_cell* ctx() const noexcept {
    return in_shared_context() ? shared_cell() : const_cast<task_base*>(this);
  }
  /// Makes the task run in `shared` (already retained for it). Only before the task starts.
  void run_in(context_cell* shared) noexcept {
    set_shared_cell(shared);
    flags |= shared_context_flag;
  }
  bool in_shared_context() const noexcept { return (flags & shared_context_flag) != 0; }
  /// Is a named_task_state (task_handle.hpp), which carries its name: only named tasks pay for
  /// a name.
  bool named() const noexcept { return (flags & named_flag) != 0; }
  /// The name a named_task_state carries; nullptr for any other state.
  virtual const std::string* stored_name() const noexcept { return nullptr; }

  // Tasks only: which loop's exception handler hears of the task's failure. First, so that it
  // fills context_cell's tail padding (context_cell puts its 4-byte refs last for this).
  std::uint32_t loop_generation = 0;
  loop* owner_loop = nullptr;
  // The innermost frame to resume next. Until the first step (status created or scheduled) it
  // is the root frame, which is all a task that never runs has to destroy; afterwards the
  // root frame is destroyed by finish(), which gets it from the root's final awaiter.
  std::coroutine_handle<> resume_point;
  // The ready-queue link (loop's lock), or the forward link of the wait list the task is
  // queued on (that primitive's mutex), or, while it sleeps, its forward link in the loop's
  // timer wheel (the wheel's lock; runtime/timer_wheel.cpp stores a tagged address here): a
  // queued or sleeping task is not ready, and a task waits on one thing at a time, so the
  // uses never overlap. The wait node and the timer entry are thus part of the task.
  task_base* next_ready = nullptr;
  task_base* live_prev = nullptr;  // live-list links (loop's lock)
  task_base* live_next = nullptr;
  // One slot, two uses that never overlap, each under its own name. While the task is queued
  // on a wait list, or asleep in the loop's timer wheel: that list's back link (wait_list and
  // timer_wheel switch the member on link and unlink). Otherwise: how it failed, if it did. A
  // failing frame parks its exception here and its awaiter takes it at once, with no
  // suspension between, so a queued or sleeping task never has a failure in flight. Sharing
  // saves 8 bytes in every task.
  union {
    std::exception_ptr error;
    task_base* wait_prev;
  };
  // Before the task finishes: 0 (nobody waits) or the newest waiter* (a lock-free stack of
  // 8-aligned nodes). Once it finished: finished_bit, plus cancelled_bit if it finished by
  // cancellation, plus retrieved_bit once an awaiter took its error.
  std::atomic<std::uintptr_t> waiters{0};
  static constexpr std::uintptr_t finished_bit = 1, cancelled_bit = 2, retrieved_bit = 4;
  cancel_hook hook;  // where it is suspended (under the cancel lock; see detail/cancel.hpp)
  std::uint32_t cancel_requests = 0;  // asyncio's num_cancels_requested (under the cancel lock)
  std::atomic<task_status> status{task_status::created};
  // The cancel lock and the two flags it guards, in one byte (see cancel_guard in
  // detail/cancel.hpp): pending is also read without the lock on fast paths.
  std::atomic<std::uint8_t> cancel_bits{0};
  static constexpr std::uint8_t lock_bit = 1, pending_bit = 2, hook_fired_bit = 4;
  // Facts fixed before the task is published (spawn sets them before start()), so a plain byte:
  // every later reader sees them through the publication (the loop's lock or Asio's post).
  std::uint8_t flags = 0;
  static constexpr std::uint8_t shared_context_flag = 1, named_flag = 2;
  // The six high bits of flags are a second field: which shard of its loop's live list holds
  // the task (the worker that started it, mod 64), so that finishing unlinks it there. Set by
  // start() before the task is published, like the flags; in this byte so that the task state
  // stays 120 bytes.
  static constexpr unsigned live_shard_shift = 2, live_shards = 64;
  unsigned live_shard() const noexcept { return flags >> live_shard_shift; }
  void set_live_shard(unsigned shard) noexcept {
    flags = static_cast<std::uint8_t>((flags & (shared_context_flag | named_flag)) |
                                      (shard << live_shard_shift));
  }
  // Its current wait (the primitive's mutex); `queued` also while asleep in the timer wheel
  // (the wheel's lock).
  wait_state wait = wait_state::idle;

  // acquire (both): pairs with complete()'s release of the bits, so the result is seen.
  bool done() const noexcept {
    return (waiters.load(std::memory_order_acquire) & finished_bit) != 0;
  }
  /// Finished by cancellation (cancelled_error escaped it, or it was cancelled unstarted).
  bool cancelled() const noexcept {
    return (waiters.load(std::memory_order_acquire) & cancelled_bit) != 0;
  }

  /// Moves the root frame's result into the typed state; called once when the root finishes.
  virtual void take_result(std::coroutine_handle<> root) noexcept = 0;

 protected:
  /// Hands a failure that nobody retrieved to its loop's exception handler, at most once.
  /// ~task_base calls it; a named state calls it first, while its name is still there.
  void report_unretrieved_failure() noexcept;

 private:
  // A task in a shared context never enters its own cell, so that cell's `root`, which it would
  // never read, holds the shared cell: no separate pointer in every task. `root` is a
  // map_node*; these two are the only places that store and read the other job's pointer in it
  // (a round trip through reinterpret_cast gives the original pointer back).
  context_cell* shared_cell() const noexcept { return reinterpret_cast<context_cell*>(root); }
  void set_shared_cell(context_cell* c) noexcept { root = reinterpret_cast<map_node*>(c); }
};

/// 128 bytes, the whole of a task_state<void>: exactly two cache lines of the blocks above
/// (docs/design/task-and-loop.md, "The task state layout"). A field added here must take bytes
/// from another, or every task takes a third line.
static_assert(sizeof(context_cell) == 48 && sizeof(task_base) == 128,
              "task_base must stay 128 bytes: loop_generation fills context_cell's tail padding");

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

/// A task's name (introspection, error reports), immutable and shared: the name that many
/// tasks carry (a gRPC server's tasks for one method) is made once.
using task_name_ref = std::shared_ptr<const std::string>;

/// name as a task_name_ref; nullptr (no name) when it is empty.
inline task_name_ref make_task_name(std::string name) {
  return name.empty() ? nullptr : std::make_shared<const std::string>(std::move(name));
}

/// Registers t with the loop and schedules its first step. Where it runs (its own cell's map,
/// or run_in()) and its name are set before: they are fixed from here on.
void start(loop& l, task_base* t);

/// Makes t ready to run again at t->resume_point (from a loop thread or any thread).
void schedule(task_base* t) noexcept;

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

/// A reference to t (its cell's count). The last release deletes it, and ~task_base reports a
/// failure nobody retrieved.
void retain_task(task_base* t) noexcept;
void release_task(task_base* t) noexcept;

}  // namespace baton::detail
