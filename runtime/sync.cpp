// SPDX-License-Identifier: BSL-1.0
// The wait protocol of the synchronisation primitives, and event, lock, semaphore, condition.
//
// Who points to whom while a task waits (see include/baton/detail/wait_list.hpp):
//
//   task_base ── hook ──▶ {wait_ops, node (in the frame)}  (set by arm(), under cancel lock)
//   primitive ── wait_list ──▶ task_base (its own links: next_ready, wait_prev)
//
// Lock order: task cancel lock → primitive mutex → (nothing). The wake paths below take only
// the primitive mutex and schedule after releasing it (wake_list).

#include <baton/condition.hpp>
#include <baton/errors.hpp>
#include <baton/event.hpp>
#include <baton/lock.hpp>
#include <baton/semaphore.hpp>

#include "loop.hpp"

#include <cassert>
#include <cstdint>
#include <exception>
#include <limits>

namespace baton::detail {

void cancel_waiter(task_base* t, void* node) noexcept {
  auto& n = *static_cast<wait_node*>(node);
  const auto& ops = static_cast<const wait_ops&>(*t->hook.kind);  // under t's cancel lock
  {
    std::lock_guard g(ops.mutex(n.owner));
    if (t->wait != wait_state::queued) return;  // granted: its wake path schedules it
    ops.list(n.owner).erase(t);
    t->wait = wait_state::removed;
  }
  schedule(t);  // it resumes into disarm(), which throws cancelled_error
}

namespace {

/// Puts back the cancellation disarm() just consumed: the next suspension point delivers it.
void keep_cancel_pending(task_base* t) noexcept {
  cancel_guard g(t);
  g.set_pending(true);
}

}  // namespace

wait_state running_wait_state() noexcept { return running_task->wait; }

bool suspend_on(wait_node& n, const wait_ops& ops, task_base* t, std::coroutine_handle<> h) {
  t->wait = wait_state::idle;
  for (;;) {
    {
      wake_list wake;  // schedules after the guard below unlocks
      std::lock_guard g(ops.mutex(n.owner));
      if (ops.try_take(n, wake)) {
        t->wait = wait_state::taken;
        return false;
      }
    }
    // Not free: queue up under the cancel lock, so cancel() either happens before (arm refuses)
    // or finds the hook. The resource may have been freed since try_take: then retry, because
    // taking it here could throw (a queue's item move), and arm()'s start must not.
    bool retry = false;
    const bool suspended = arm(t, h, ops, &n, [&] {
      {
        std::lock_guard g(ops.mutex(n.owner));
        if (ops.available(n)) {
          retry = true;
          return false;
        }
        t->wait = wait_state::queued;
        ops.list(n.owner).push_back(t);
      }
      // From here a wake path may grant t and schedule it on another thread; the task then
      // waits in disarm() for this thread to leave arm(), so n stays valid until then.
      if (ops.queued != nullptr) ops.queued(n);
      return true;
    });
    if (suspended) return true;  // n must not be touched any more
    if (!retry) return false;    // cancellation pending: await_resume throws cancelled_error
  }
}

void resume_from(wait_node& n, const wait_ops& ops) {
  task_base* const t = running_task;
  // wait was written before the task was scheduled (or by this thread): no lock needed.
  if (t->wait == wait_state::taken) return;
  try {
    disarm(t);
  } catch (const cancelled_error&) {
    if (t->wait == wait_state::granted && !ops.undo(n)) {
      keep_cancel_pending(t);  // the operation completed and cannot be undone
      return;
    }
    throw;
  }
  assert(t->wait == wait_state::granted);
}

/// The primitives' private state, for their wait_ops.
struct sync_access {
  // event ------------------------------------------------------------------------------------
  static bool event_take(wait_node& n, wake_list&) { return static_cast<event*>(n.owner)->flag_; }
  static bool event_available(const wait_node& n) noexcept {
    return static_cast<const event*>(n.owner)->flag_;
  }
  static bool nothing_to_undo(wait_node&) noexcept { return true; }

  // lock -------------------------------------------------------------------------------------
  static bool lock_take(wait_node& n, wake_list&) {
    auto* l = static_cast<lock*>(n.owner);
    if (l->locked_) return false;  // free implies nobody waits: ownership is handed over
    l->locked_ = true;
    return true;
  }
  static bool lock_available(const wait_node& n) noexcept {
    return !static_cast<const lock*>(n.owner)->locked_;
  }
  /// Under l's mutex: ownership to the oldest waiter, else the lock becomes free.
  static void lock_hand_over(lock& l, wake_list& wake) noexcept {
    if (task_base* w = l.waiters_.pop_front()) {
      wake.add(w);  // locked_ stays true: w owns it now
    } else {
      l.locked_ = false;
    }
  }
  static void lock_release_held(lock& l) noexcept {
    wake_list wake;
    std::lock_guard g(l.mutex_);
    lock_hand_over(l, wake);
  }
  static bool lock_undo(wait_node& n) noexcept {
    lock_release_held(*static_cast<lock*>(n.owner));
    return true;
  }

  // semaphore --------------------------------------------------------------------------------
  static bool semaphore_take(wait_node& n, wake_list&) {
    auto* s = static_cast<semaphore*>(n.owner);
    if (s->value_ == 0) return false;  // permits free implies nobody waits
    --s->value_;
    return true;
  }
  static bool semaphore_available(const wait_node& n) noexcept {
    return static_cast<const semaphore*>(n.owner)->value_ != 0;
  }
  static void semaphore_hand_over(semaphore& s, wake_list& wake) noexcept {
    if (task_base* w = s.waiters_.pop_front()) {
      wake.add(w);  // the permit goes to w directly
    } else {
      ++s.value_;
    }
  }
  static bool semaphore_undo(wait_node& n) noexcept {
    auto& s = *static_cast<semaphore*>(n.owner);
    wake_list wake;
    std::lock_guard g(s.mutex_);
    semaphore_hand_over(s, wake);  // never above the bound: this permit was taken from it
    return true;
  }

  // condition --------------------------------------------------------------------------------
  static bool never(wait_node&, wake_list&) { return false; }
  static bool never_available(const wait_node&) noexcept { return false; }
  /// Queued (and still under the task's cancel lock): now the lock may go.
  static void condition_queued(wait_node& n) noexcept {
    lock_release_held(*static_cast<condition*>(n.owner)->lock_);
  }
  static void condition_wake(condition& c, std::size_t count) noexcept {
    wake_list wake;
    std::lock_guard g(c.mutex_);
    for (; count != 0; --count) {
      task_base* w = c.waiters_.pop_front();
      if (w == nullptr) break;
      wake.add(w);
    }
  }
  static bool condition_undo(wait_node& n) noexcept {
    // Notified, then cancelled: pass the notification on (asyncio 3.13 does the same).
    condition_wake(*static_cast<condition*>(n.owner), 1);
    return true;
  }

  static const wait_ops event_ops;
  static const wait_ops lock_ops;
  static const wait_ops semaphore_ops;
  static const wait_ops condition_ops;
};

const wait_ops sync_access::event_ops = make_wait_ops<event, &event::mutex_, &event::waiters_>(
    "event", &event_take, &event_available, nullptr, &nothing_to_undo);
const wait_ops sync_access::lock_ops = make_wait_ops<lock, &lock::mutex_, &lock::waiters_>(
    "lock", &lock_take, &lock_available, nullptr, &lock_undo);
const wait_ops sync_access::semaphore_ops =
    make_wait_ops<semaphore, &semaphore::mutex_, &semaphore::waiters_>(
        "semaphore", &semaphore_take, &semaphore_available, nullptr, &semaphore_undo);
const wait_ops sync_access::condition_ops =
    make_wait_ops<condition, &condition::mutex_, &condition::waiters_>(
        "condition", &never, &never_available, &condition_queued, &condition_undo);

}  // namespace baton::detail

namespace baton {

using detail::sync_access;
using detail::wake_list;

// ---------------------------------------------------------------------------------------------
// event

event::wait_awaitable::wait_awaitable(event& e) noexcept : wait_op(&e) {}
const detail::wait_ops& event::wait_awaitable::ops() noexcept { return sync_access::event_ops; }

void event::set() {
  wake_list wake;  // schedules after the guard below unlocks
  std::lock_guard g(mutex_);
  flag_ = true;
  while (detail::task_base* w = waiters_.pop_front()) wake.add(w);
}

void event::clear() {
  std::lock_guard g(mutex_);
  flag_ = false;
}

bool event::is_set() const {
  std::lock_guard g(mutex_);
  return flag_;
}

// ---------------------------------------------------------------------------------------------
// lock

lock::acquire_awaitable::acquire_awaitable(lock& l) noexcept : wait_op(&l) {}
const detail::wait_ops& lock::acquire_awaitable::ops() noexcept { return sync_access::lock_ops; }

void lock::release() {
  wake_list wake;
  std::lock_guard g(mutex_);
  if (!locked_) throw baton::runtime_error("baton: lock::release() of a lock that is not locked");
  sync_access::lock_hand_over(*this, wake);
}

bool lock::locked() const {
  std::lock_guard g(mutex_);
  return locked_;
}

// ---------------------------------------------------------------------------------------------
// semaphore

semaphore::acquire_awaitable::acquire_awaitable(semaphore& s) noexcept : wait_op(&s) {}
const detail::wait_ops& semaphore::acquire_awaitable::ops() noexcept {
  return sync_access::semaphore_ops;
}

semaphore::semaphore(std::ptrdiff_t value) : semaphore(value, false) {}

semaphore::semaphore(std::ptrdiff_t value, bool bounded)
    : value_(static_cast<std::size_t>(value)),
      bound_(bounded ? value_ : std::numeric_limits<std::size_t>::max()) {
  if (value < 0) throw baton::runtime_error("baton: a semaphore's initial value must be >= 0");
}

void semaphore::release() {
  wake_list wake;
  std::lock_guard g(mutex_);
  // As asyncio checks it: with waiters value_ is 0, so this only fires for a bound of 0.
  if (value_ >= bound_) {
    throw baton::runtime_error("baton: bounded_semaphore released more times than acquired");
  }
  sync_access::semaphore_hand_over(*this, wake);
}

bool semaphore::locked() const {
  std::lock_guard g(mutex_);
  return value_ == 0;
}

// ---------------------------------------------------------------------------------------------
// condition

/// Waits for a notification; its node is queued before the lock is released (condition_queued)
/// so that no notify() can come in between.
class condition::wait_awaitable : public detail::wait_op<wait_awaitable> {
 public:
  explicit wait_awaitable(condition& c) noexcept : wait_op(&c) {}
  static const detail::wait_ops& ops() noexcept { return sync_access::condition_ops; }
  /// After the wait: whether the lock was released (the task got queued): it must be
  /// re-acquired.
  static bool released() noexcept {
    return detail::running_wait_state() != detail::wait_state::idle;
  }
};

task<> condition::wait() {
  if (!lock_->locked()) {
    throw baton::runtime_error("baton: condition::wait() needs the condition's lock held");
  }
  wait_awaitable w(*this);
  std::exception_ptr cancelled;
  try {
    co_await w;
  } catch (const cancelled_error&) {
    cancelled = std::current_exception();
  }
  if (w.released()) {
    // Re-acquire, even when cancelled (asyncio does): wait() always returns with the lock held.
    for (;;) {
      try {
        co_await lock_->acquire();
        break;
      } catch (const cancelled_error&) {
        cancelled = std::current_exception();
      }
    }
  }
  if (cancelled) std::rethrow_exception(cancelled);
}

void condition::notify(std::size_t n) {
  if (!lock_->locked()) {
    throw baton::runtime_error("baton: condition::notify() needs the condition's lock held");
  }
  sync_access::condition_wake(*this, n);
}

void condition::notify_all() { notify(std::numeric_limits<std::size_t>::max()); }

}  // namespace baton
