// SPDX-License-Identifier: BSL-1.0
// Cancellation: suspension kinds, the cancel lock, and arm/disarm/cancel/uncancel/cancelling.
#pragma once

// A task's cancellation state is four fields of task_base: `hook` (where it is suspended),
// `cancel_requests` (asyncio's num_cancels_requested), and in the byte `cancel_bits` the cancel
// lock plus two flags it guards, `pending` (a cancellation is owed) and `hook_fired` (cancel()
// already ran the hook's cancel during this suspension). This header is the protocol over them:
//
//   awaiter                          cancel() from any thread
//   ─────────────────────────────    ─────────────────────────────────────────────────────
//   arm(): lock; pending? → no       lock; ++cancel_requests; pending = true;
//     suspension; else hook = kind,  hook set and not fired? → fire it once (kind->cancel,
//     start the operation; unlock    or cancel the awaited task after unlocking); unlock
//   ... resumed by whoever completes the operation (or by the hook) ...
//   disarm(): lock; hook = {}; pending? → consume it, throw cancelled_error
//
// The code is in runtime/cancel.cpp; the loop delivers a cancel that came before the first step
// (runtime/loop.cpp, cancel_before_start) and at the end (complete()).

#include <baton/detail/task_base.hpp>
#include <baton/errors.hpp>

#include <atomic>
#include <coroutine>
#include <cstdint>

namespace baton::detail {

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

/// The kind of a task suspended in `co_await handle` (cancelling it cancels the awaited task).
inline constexpr await_kind task_await_kind{"task", nullptr};

/// Holds a task's cancel lock (a spinlock: held for a few instructions, never while blocking)
/// and, while held, the flags it guards. The holder changes them in its copy and stores them
/// with the unlock; that is safe because every other writer of cancel_bits only tries to set
/// lock_bit, which changes nothing while the lock is held.
class cancel_guard {
 public:
  explicit cancel_guard(task_base* t) noexcept : t_(t) {
    // acquire: see everything the previous holder wrote under the lock (it published it with
    // the release store of ~cancel_guard).
    const std::uint8_t before =
        t->cancel_bits.fetch_or(task_base::lock_bit, std::memory_order_acquire);
    if ((before & task_base::lock_bit) != 0) [[unlikely]] {
      bits_ = lock_contended(t);
      return;
    }
    bits_ = before;
  }
  // release: publishes what the holder wrote under the lock to the next holder.
  ~cancel_guard() { t_->cancel_bits.store(bits_, std::memory_order_release); }
  cancel_guard(const cancel_guard&) = delete;
  cancel_guard& operator=(const cancel_guard&) = delete;

  bool pending() const noexcept { return (bits_ & task_base::pending_bit) != 0; }
  void set_pending(bool on) noexcept { set(task_base::pending_bit, on); }
  /// cancel() ran the hook's cancel during this suspension (arm() resets it).
  bool hook_fired() const noexcept { return (bits_ & task_base::hook_fired_bit) != 0; }
  void set_hook_fired(bool on) noexcept { set(task_base::hook_fired_bit, on); }

 private:
  /// Spins until the lock is free and takes it; returns the flags it guards.
  static std::uint8_t lock_contended(task_base* t) noexcept;
  void set(std::uint8_t bit, bool on) noexcept {
    bits_ = static_cast<std::uint8_t>(on ? bits_ | bit : bits_ & ~bit);
  }
  task_base* t_;
  std::uint8_t bits_;  // the flags without lock_bit
};

/// A cancellation is owed to t and not yet delivered. Relaxed, without the lock: a racing
/// cancel() is simply seen at the next suspension point (under the lock use
/// cancel_guard::pending()).
inline bool cancel_pending(const task_base* t) noexcept {
  return (t->cancel_bits.load(std::memory_order_relaxed) & task_base::pending_bit) != 0;
}

/// Requests cancellation (asyncio's Task.cancel()); false when t already finished.
bool cancel(task_base* t) noexcept;

/// The state an operation and the task awaiting it share (to_thread's call, shield's node): the
/// operation's completion and the task's cancellation race to wake the task, and the first
/// claim() wins; each of the two lets go once, and the second drop() frees the state.
struct shared_wake {
  task_base* waiting = nullptr;
  std::atomic<int> refs{2};
  std::atomic<bool> claimed{false};

  /// acq_rel: exactly one caller wins, and it sees what the other side wrote before trying.
  bool claim() noexcept { return !claimed.exchange(true, std::memory_order_acq_rel); }
  /// acq_rel: true for the last of the two, which sees the other's writes before freeing.
  bool drop() noexcept { return refs.fetch_sub(1, std::memory_order_acq_rel) == 1; }
};

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

/// After resumption: removes the hook; true when cancellation was pending (it is consumed).
[[nodiscard]] bool disarm_pending(task_base* t) noexcept;

/// After resumption: removes the hook, and throws cancelled_error when cancellation is pending
/// (consuming it, as asyncio does). Inline, so that the throw happens in the awaiting
/// coroutine's own frame: the unwinder walks every frame between a throw and its catch twice,
/// at about 1 700 instructions a frame, and an out-of-line function there adds two frames to
/// the walk (itself and its cold part; docs/design/cancellation.md, "What a cancellation
/// costs").
inline void disarm(task_base* t) {
  if (disarm_pending(t)) [[unlikely]]
    throw cancelled_error();
}

/// Under the cancel lock: true when cancellation is pending for t (it is consumed).
[[nodiscard]] bool take_pending_cancel(task_base* t) noexcept;

/// Throws cancelled_error if cancellation is pending for t (consumes it). Inline for the same
/// reason as disarm(), and so that a yield, which asks this on every resumption, pays one
/// relaxed load and no call when nothing is pending.
inline void throw_if_cancel_pending(task_base* t) {
  if (cancel_pending(t) && take_pending_cancel(t)) [[unlikely]]
    throw cancelled_error();
}

/// Withdraws one cancellation request (asyncio's Task.uncancel()); returns the requests left.
/// When no more than `floor` are left (requests older than the caller's interest, already
/// delivered), a pending, undelivered cancellation is withdrawn too.
std::uint32_t uncancel(task_base* t, std::uint32_t floor = 0) noexcept;

/// How many cancellation requests t has (asyncio's Task.cancelling()).
std::uint32_t cancelling(task_base* t) noexcept;

}  // namespace baton::detail
