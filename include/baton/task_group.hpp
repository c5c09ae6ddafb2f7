// SPDX-License-Identifier: BSL-1.0
// task_group: structured concurrency; like asyncio.TaskGroup.
#pragma once

// Contract:
//   g.spawn(t)        starts t as a child of the group (a copy of the current context).
//   co_await g.wait() waits until every child finished. The first child to fail (with anything
//                     but cancelled_error) cancels all its siblings; wait() then rethrows that
//                     first failure; errors() lists every failure in the order they happened.
//                     Children may be spawned until wait() returns; after that, or once a
//                     child failed, spawn() throws runtime_error.
//   Context:      children get copies of the spawner's context, as spawn() takes them (without
//                 inherit::never vars); nothing leaks back.
//   Exceptions:   wait(): the first failure; cancelled_error when the waiting task was
//                 cancelled (its children are cancelled and awaited first).
//   Cancellation: cancelling the task in wait() cancels every child and waits for them.
//                 g.cancel() cancels every child.
//   Thread-safety: spawn/wait/cancel from loop threads; the group is internally locked.
//   Spawning into a group after a child failed throws runtime_error (it is shutting down).
//   Destroying a group whose wait() was never completed cancels the children still running
//   (they finish on the loop); failures nobody saw through wait() or errors() are reported to
//   the loop's exception handler. Finished children are released at once: a long-lived group
//   holds only its running children.
//
// Example:
//   baton::task_group g;
//   g.spawn(fetch(a));
//   g.spawn(fetch(b));
//   co_await g.wait();

#include <baton/detail/cancel.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

namespace baton {

namespace detail {

/// Shared by the group and one member per running child (the last one out frees it).
struct group_state {
  std::mutex mutex;
  std::unordered_set<task_base*> running;  // retained until each finishes
  std::vector<std::exception_ptr> errors;  // in the order they happened
  std::vector<std::string> failed_names;   // the task of each error, for reports
  bool failed = false;
  bool closed = false;                       // wait() returned: no more children
  std::size_t seen = 0;                      // errors handed out by wait() or errors()
  task_base* waiter = nullptr;               // the one task allowed in wait()
  std::atomic<task_base*> waiting{nullptr};  // that task while suspended, woken exactly once
  std::uint32_t loop_generation = 0;         // for reporting errors nobody saw

  ~group_state();
  /// Refuses new children after a failure (asyncio's "TaskGroup is shutting down") and after
  /// wait() returned.
  void check_accepting();
  static void add(const std::shared_ptr<group_state>& g, task_base* child);
  void cancel_children() noexcept;
};

/// co_await of this suspends until the group has no running child (or the waiter is
/// cancelled, which only wakes it: wait() then cancels the children and waits again).
struct group_wait_awaiter {
  group_state* g;
  task_base* self = nullptr;
  bool await_ready() const noexcept { return false; }
  template <baton_promise P>
  bool await_suspend(std::coroutine_handle<P> h) {
    self = running_task;
    return suspend(h);
  }
  void await_resume() { disarm(self); }
  bool suspend(std::coroutine_handle<> h);
};

}  // namespace detail

class task_group {
 public:
  task_group();
  ~task_group();
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  /// Throws runtime_error once a child failed (the group is shutting down).
  template <class T>
  task_handle<T> spawn(task<T> t, task_options opts = {}) {
    s_->check_accepting();
    task_handle<T> h = baton::spawn(std::move(t), std::move(opts));
    detail::group_state::add(s_, detail::access::base(h));
    return h;
  }

  /// Waits for every child; rethrows the first failure. One task at a time may wait: a second
  /// concurrent wait() throws runtime_error.
  [[nodiscard]] task<void> wait();

  /// Cancels every running child.
  void cancel() noexcept { s_->cancel_children(); }

  /// Every failure so far, in the order they happened.
  std::vector<std::exception_ptr> errors() const;

 private:
  std::shared_ptr<detail::group_state> s_;
};

}  // namespace baton
