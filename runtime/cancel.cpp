// SPDX-License-Identifier: BSL-1.0
// Cancellation: the cancel lock's slow path, cancel(), disarm_pending(), take_pending_cancel(),
// uncancel() and cancelling().

#include <baton/detail/cancel.hpp>
#include <baton/errors.hpp>

namespace baton::detail {

std::uint8_t cancel_guard::lock_contended(task_base* t) noexcept {
  for (;;) {
    // Relaxed while waiting: only the fetch_or that takes the lock needs to see the holder's
    // writes, and it acquires.
    while ((t->cancel_bits.load(std::memory_order_relaxed) & task_base::lock_bit) != 0) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    // acquire: as in the constructor, see what the previous holder published on unlock.
    const std::uint8_t before =
        t->cancel_bits.fetch_or(task_base::lock_bit, std::memory_order_acquire);
    if ((before & task_base::lock_bit) == 0) return before;
  }
}

bool cancel(task_base* t) noexcept {
  if (t->done()) return false;
  task_base* awaited = nullptr;  // cancelled after the lock is released (see below)
  {
    cancel_guard g(t);
    // Relaxed: status is written under this lock (complete()), which the guard acquired.
    if (t->status.load(std::memory_order_relaxed) == task_status::done) return false;
    ++t->cancel_requests;
    g.set_pending(true);
    const cancel_hook h = t->hook;
    if (h.kind != nullptr && !g.hook_fired()) {
      g.set_hook_fired(true);  // once per suspension; the hook stays for introspection
      if (h.kind->cancel == nullptr) {
        // Waiting for another task: cancelling it under our lock could come back to us (A
        // awaits B awaits A) and spin on our own lock. Keep it alive and cancel it unlocked.
        awaited = static_cast<task_base*>(h.arg);
        retain_task(awaited);
      } else {
        h.kind->cancel(t, h.arg);
      }
    }
  }
  if (awaited != nullptr) {
    cancel(awaited);
    release_task(awaited);
  }
  return true;
}

bool disarm_pending(task_base* t) noexcept {
  cancel_guard g(t);
  t->hook = {};
  if (!g.pending()) return false;
  g.set_pending(false);
  return true;
}

bool take_pending_cancel(task_base* t) noexcept {
  cancel_guard g(t);
  if (!g.pending()) return false;
  g.set_pending(false);
  return true;
}

std::uint32_t uncancel(task_base* t, std::uint32_t floor) noexcept {
  cancel_guard g(t);
  if (t->cancel_requests > 0) --t->cancel_requests;
  if (t->cancel_requests <= floor) g.set_pending(false);
  return t->cancel_requests;
}

std::uint32_t cancelling(task_base* t) noexcept {
  cancel_guard g(t);
  return t->cancel_requests;
}

}  // namespace baton::detail
