// SPDX-License-Identifier: BSL-1.0
// The waiting machinery shared by event, lock, semaphore, condition and queue.
#pragma once

// Every primitive is a std::mutex, its state, and intrusive FIFOs of waiting tasks. A task
// waits on one thing at a time and is not ready while it waits, so the list links are fields of
// the task (task_base::wait_prev, and next_ready doubling as the forward link) and its wait
// state is task_base::wait: waiting never allocates, and the awaiter in the frame keeps only
// which primitive it waits on (a wait_node: 8 bytes, plus what a queue's put or get carries).
//
//   primitive ── wait_list: head ⇄ task ⇄ task ⇄ tail
//                                  └── hook {kind = the wait_ops, arg = the wait_node in the frame}
//
// While a task is queued its hook (set by arm() before it is queued, cleared by disarm() after
// it resumed) leads from the task to its wait_ops and to its awaiter: node_of(t).
//
// A wait's life (every transition under the primitive's mutex):
//
//   idle ──try_take──▶ taken                       (resource free: no suspension)
//   idle ──arm/start──▶ queued ──wake path──▶ granted   (resource handed over, task scheduled)
//                          └────cancel hook──▶ removed  (unlinked, task scheduled)
//
// Exactly one of the wake path and the cancel hook moves a task out of `queued`, so a task is
// scheduled exactly once. When cancellation reaches a task whose wait was already granted,
// disarm() throws cancelled_error in await_resume; the awaiter then gives the resource back
// (wait_ops::undo) before rethrowing, so cancellation never loses a lock, a permit or an item.
//
// Lock order: a task's cancel lock, then a primitive's mutex (arm() runs start() under the
// cancel lock; cancel() runs the hook under it). The wake path holds only the primitive's mutex
// and never takes a cancel lock: it collects granted tasks in a wake_list and schedules them
// after unlocking. schedule() takes neither.

#include <baton/detail/cancel.hpp>
#include <baton/detail/task_base.hpp>
#include <baton/task.hpp>

#include <cassert>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>

namespace baton::detail {

struct wait_node;
struct wait_list;
class wake_list;

/// The cancel hook of every wait: unlinks a queued task and schedules it (runtime/sync.cpp).
void cancel_waiter(task_base* t, void* node) noexcept;

/// What a primitive does for one kind of wait; called with the primitive's mutex held unless
/// noted. It is the task's await_kind while the task waits (what: "lock", "queue.get", ...).
struct wait_ops : await_kind {
  /// Takes the resource now if it is free and nobody is ahead; may throw (nothing taken then).
  bool (*try_take)(wait_node& n, wake_list& wake);
  /// Whether try_take would succeed now. Runs inside arm(), so it must not throw.
  bool (*available)(const wait_node& n) noexcept;
  /// Optional: runs once the task is queued, mutex released, still inside arm() (condition
  /// releases its lock here, so no notification can slip in before the task is queued).
  void (*queued)(wait_node& n) noexcept;
  /// Cancellation beat a grant: give the resource back (takes the mutex itself). Returns false
  /// when the operation cannot be undone (a put whose item is in the queue): the wait then
  /// succeeds and the cancellation stays pending for the task's next suspension point.
  bool (*undo)(wait_node& n) noexcept;
  /// The primitive's mutex and the list this kind of wait queues on (found from the node's
  /// owner, so a node, which lives in the waiting frame, stores neither).
  std::mutex& (*mutex)(void* owner) noexcept;
  wait_list& (*list)(void* owner) noexcept;
};

/// wait_ops::mutex and wait_ops::list for a primitive P and its members (pointers to members).
template <class P, auto Mutex>
std::mutex& member_mutex(void* owner) noexcept {
  return static_cast<P*>(owner)->*Mutex;
}
template <class P, auto List>
wait_list& member_list(void* owner) noexcept {
  return static_cast<P*>(owner)->*List;
}

/// The wait_ops of one kind of wait on primitive P, whose mutex and list are its members
/// Mutex and List (pointers to members).
template <class P, auto Mutex, auto List>
constexpr wait_ops make_wait_ops(const char* what, decltype(wait_ops::try_take) try_take,
                                 decltype(wait_ops::available) available,
                                 decltype(wait_ops::queued) queued,
                                 decltype(wait_ops::undo) undo) noexcept {
  return {{what, &cancel_waiter}, try_take, available, queued, undo, &member_mutex<P, Mutex>,
          &member_list<P, List>};
}

/// The part of a waiting awaiter a primitive sees: which primitive it waits on. It lives in the
/// awaiter, in the waiting frame; the links and the state are in the task.
struct wait_node {
  void* owner = nullptr;  // the primitive
};

/// The awaiter of a task queued on a wait list (valid while it is queued or granted).
inline wait_node& node_of(task_base* t) noexcept { return *static_cast<wait_node*>(t->hook.arg); }

/// An intrusive FIFO of waiting tasks; guarded by its primitive's mutex.
struct wait_list {
  task_base* head = nullptr;
  task_base* tail = nullptr;

  bool empty() const noexcept { return head == nullptr; }
  task_base* front() const noexcept { return head; }

  void push_back(task_base* t) noexcept {
    // The slot holds no failure now (see task_base::error): end that member, use the link.
    assert(!t->error);
    t->error.~exception_ptr();
    t->next_ready = nullptr;
    t->wait_prev = tail;
    if (tail != nullptr) {
      tail->next_ready = t;
    } else {
      head = t;
    }
    tail = t;
  }

  void erase(task_base* t) noexcept {
    if (t->wait_prev != nullptr) {
      t->wait_prev->next_ready = t->next_ready;
    } else {
      head = t->next_ready;
    }
    if (t->next_ready != nullptr) {
      t->next_ready->wait_prev = t->wait_prev;
    } else {
      tail = t->wait_prev;
    }
    t->next_ready = nullptr;
    std::construct_at(&t->error);  // back to "no failure"
  }

  task_base* pop_front() noexcept {
    task_base* t = head;
    if (t != nullptr) erase(t);
    return t;
  }
};

/// Nodes granted under a primitive's mutex; the destructor schedules their tasks. Declare it
/// before the lock_guard, so it runs after the mutex is released: a woken task may then destroy
/// the primitive as soon as it runs, and nothing here touches the primitive any more.
class wake_list {
 public:
  wake_list() = default;
  wake_list(const wake_list&) = delete;
  wake_list& operator=(const wake_list&) = delete;
  ~wake_list() { run(); }

  /// Marks t granted (it must be unlinked already) and keeps it for scheduling.
  void add(task_base* t) noexcept {
    t->wait = wait_state::granted;
    granted_.push_back(t);
  }

  /// Schedules every kept task, in grant order. A granted task is not touched by anyone else
  /// and cannot run before it is scheduled, so reading its link here is safe.
  void run() noexcept {
    task_base* t = std::exchange(granted_, {}).head;
    while (t != nullptr) {
      task_base* const next = t->next_ready;
      std::construct_at(&t->error);  // off every wait list now: the slot is "no failure" again
      schedule(t);                   // from here on t may run, and push itself elsewhere
      t = next;
    }
  }

 private:
  wait_list granted_;  // the same links: a granted task has left its primitive's list
};

/// await_suspend of every wait: try_take, else arm() and queue the task. Returns whether the
/// task suspended. Non-template (runtime/sync.cpp).
bool suspend_on(wait_node& n, const wait_ops& ops, task_base* t, std::coroutine_handle<> h);

/// await_resume of every wait (in the task that waited): disarm(); on cancellation gives a
/// granted resource back (undo) and rethrows cancelled_error.
void resume_from(wait_node& n, const wait_ops& ops);

/// The wait state of the task running on this thread (after its wait, for condition::wait).
wait_state running_wait_state() noexcept;

/// Grants from the friend side of the non-template primitives (runtime/sync.cpp).
struct sync_access;

/// The awaiter base of every primitive's waits. Derived names its wait_ops with a static
/// `ops()`; the awaiter itself holds only the primitive's address.
template <class Derived>
class wait_op : protected wait_node {
 public:
  bool await_ready() const noexcept { return false; }

  template <baton_promise P>
  bool await_suspend(std::coroutine_handle<P> h) {
    return suspend_on(*this, Derived::ops(), running_task, h);
  }

  void await_resume() { resume_from(*this, Derived::ops()); }

  /// The awaiter owning node n (for the primitives' wait_ops functions).
  static Derived& from(wait_node& n) noexcept {
    return static_cast<Derived&>(static_cast<wait_op&>(n));
  }
  static const Derived& from(const wait_node& n) noexcept {
    return static_cast<const Derived&>(static_cast<const wait_op&>(n));
  }

 protected:
  explicit wait_op(void* prim) noexcept { owner = prim; }
  // Movable before it is awaited (never while queued: the task's hook points at it).
  wait_op(wait_op&&) noexcept = default;
  wait_op(const wait_op&) = delete;
  wait_op& operator=(const wait_op&) = delete;
  wait_op& operator=(wait_op&&) = delete;
  ~wait_op() = default;
};

}  // namespace baton::detail
