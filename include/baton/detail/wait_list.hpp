// SPDX-License-Identifier: BSL-1.0
// The waiting machinery shared by event, lock, semaphore, condition and queue.
#pragma once

// Every primitive is a std::mutex, its state, and intrusive FIFOs of wait_nodes. A node lives in
// the awaiter, i.e. in the waiting coroutine's frame, so waiting never allocates.
//
//   primitive ── mutex ── state (flag, owner, count, items)
//       └── wait_list: head ⇄ node ⇄ node ⇄ tail        node ──▶ task_base (to schedule)
//                                                        node ◀── task_base::hook (to cancel)
//
// A node's life (every transition under the primitive's mutex):
//
//   idle ──try_take──▶ taken                       (resource free: no suspension)
//   idle ──arm/start──▶ queued ──wake path──▶ granted   (resource handed over, task scheduled)
//                          └────cancel hook──▶ removed  (unlinked, task scheduled)
//
// Exactly one of the wake path and the cancel hook moves a node out of `queued`, so a task is
// scheduled exactly once. When cancellation reaches a task whose node was already granted,
// disarm() throws cancelled_error in await_resume; the awaiter then gives the resource back
// (wait_ops::undo) before rethrowing, so cancellation never loses a lock, a permit or an item.
//
// Lock order: a task's cancel lock, then a primitive's mutex (arm() runs start() under the
// cancel lock; cancel() runs the hook under it). The wake path holds only the primitive's mutex
// and never takes a cancel lock: it collects granted nodes in a wake_list and schedules them
// after unlocking. schedule() takes neither.

#include <baton/detail/task_base.hpp>
#include <baton/task.hpp>

#include <coroutine>
#include <cstdint>
#include <mutex>

namespace baton::detail {

struct wait_node;
struct wait_list;
class wake_list;

/// Where a node is in its life (see the picture above).
enum class wait_state : std::uint8_t { idle, taken, queued, granted, removed };

/// What a primitive does for one kind of wait; called with the node's mutex held unless noted.
struct wait_ops {
  const char* what;  // what the task awaits (introspection): "lock", "queue.get", ...
  /// Takes the resource now if it is free and nobody is ahead; may throw (nothing taken then).
  bool (*try_take)(wait_node& n, wake_list& wake);
  /// Whether try_take would succeed now. Runs inside arm(), so it must not throw.
  bool (*available)(const wait_node& n) noexcept;
  /// Optional: runs once the node is queued, mutex released, still inside arm() (condition
  /// releases its lock here, so no notification can slip in before the node is queued).
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
  return {what, try_take, available, queued, undo, &member_mutex<P, Mutex>, &member_list<P, List>};
}

/// One waiting awaiter: linked into its primitive's FIFO while queued.
struct wait_node {
  wait_node* prev = nullptr;
  wait_node* next = nullptr;
  task_base* task = nullptr;
  const wait_ops* ops = nullptr;
  void* owner = nullptr;  // the primitive
  wait_state state = wait_state::idle;

  std::mutex& mutex() const noexcept { return ops->mutex(owner); }
  wait_list& list() const noexcept { return ops->list(owner); }
};

/// An intrusive FIFO of nodes; guarded by its primitive's mutex.
struct wait_list {
  wait_node* head = nullptr;
  wait_node* tail = nullptr;

  bool empty() const noexcept { return head == nullptr; }
  wait_node* front() const noexcept { return head; }

  void push_back(wait_node* n) noexcept {
    n->next = nullptr;
    n->prev = tail;
    if (tail != nullptr) {
      tail->next = n;
    } else {
      head = n;
    }
    tail = n;
  }

  void erase(wait_node* n) noexcept {
    if (n->prev != nullptr) {
      n->prev->next = n->next;
    } else {
      head = n->next;
    }
    if (n->next != nullptr) {
      n->next->prev = n->prev;
    } else {
      tail = n->prev;
    }
    n->prev = n->next = nullptr;
  }

  wait_node* pop_front() noexcept {
    wait_node* n = head;
    if (n != nullptr) erase(n);
    return n;
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

  /// Marks n granted (it must be unlinked already) and keeps it for scheduling.
  void add(wait_node* n) noexcept {
    n->state = wait_state::granted;
    n->next = nullptr;
    if (tail_ != nullptr) {
      tail_->next = n;
    } else {
      head_ = n;
    }
    tail_ = n;
  }

  /// Schedules every kept task, in grant order. A granted node is not touched by anyone else
  /// and its task cannot run before it is scheduled, so reading it here is safe.
  void run() noexcept {
    wait_node* n = head_;
    head_ = tail_ = nullptr;
    while (n != nullptr) {
      wait_node* const next = n->next;
      task_base* const t = n->task;
      schedule(t);  // from here on n may be gone
      n = next;
    }
  }

 private:
  wait_node* head_ = nullptr;
  wait_node* tail_ = nullptr;
};

/// await_suspend of every wait: try_take, else arm() and queue the node. Returns whether the
/// task suspended. Non-template (runtime/sync.cpp).
bool suspend_on(wait_node& n, task_base* t, std::coroutine_handle<> h);

/// await_resume of every wait: disarm(); on cancellation gives a granted resource back (undo)
/// and rethrows cancelled_error.
void resume_from(wait_node& n);

/// Grants from the friend side of the non-template primitives (runtime/sync.cpp).
struct sync_access;

/// The awaiter base of every primitive's waits.
class wait_op : protected wait_node {
 public:
  bool await_ready() const noexcept { return false; }

  template <baton_promise P>
  bool await_suspend(std::coroutine_handle<P> h) {
    return suspend_on(*this, h.promise().owner, h);
  }

  void await_resume() { resume_from(*this); }

 protected:
  wait_op(const wait_ops& o, void* prim) noexcept {
    ops = &o;
    owner = prim;
  }
  // Movable before it is awaited (a node is never moved while queued: it is in a frame).
  wait_op(wait_op&&) noexcept = default;
  wait_op(const wait_op&) = delete;
  wait_op& operator=(const wait_op&) = delete;
  wait_op& operator=(wait_op&&) = delete;
  ~wait_op() = default;

 public:
  /// The derived awaiter owning node n (for the primitives' wait_ops functions).
  template <class Derived>
  static Derived& from(wait_node& n) noexcept {
    return static_cast<Derived&>(static_cast<wait_op&>(n));
  }
  template <class Derived>
  static const Derived& from(const wait_node& n) noexcept {
    return static_cast<const Derived&>(static_cast<const wait_op&>(n));
  }
};

}  // namespace baton::detail
