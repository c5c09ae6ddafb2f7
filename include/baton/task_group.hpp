// SPDX-License-Identifier: BSL-1.0
// task_group: structured concurrency; like asyncio.TaskGroup.
#pragma once

// Contract:
//   g.spawn(t)        starts t as a child of the group (a copy of the current context).
//   co_await g.wait() waits until every child finished. The first child to fail (with anything
//                     but cancelled_error) cancels all its siblings; wait() then rethrows that
//                     first failure; errors() lists every failure in the order they happened.
//                     Children may be spawned until wait() returns.
//   Context:      children get copies of the spawner's context; nothing leaks back.
//   Exceptions:   wait(): the first failure; cancelled_error when the waiting task was
//                 cancelled (its children are cancelled and awaited first).
//   Cancellation: cancelling the task in wait() cancels every child and waits for them.
//                 g.cancel() cancels every child.
//   Thread-safety: spawn/wait/cancel from loop threads; the group is internally locked.
//   Destroying a group whose wait() was never completed cancels the children still running
//   (they finish on the loop; their failures are reported if nobody saw them).
//
// Example:
//   baton::task_group g;
//   g.spawn(fetch(a));
//   g.spawn(fetch(b));
//   co_await g.wait();

#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <vector>

namespace baton {

namespace detail {

/// Shared by the group and one member per running child (the last one out frees it).
struct group_state {
  std::mutex mutex;
  std::vector<task_base*> children;  // retained until the state dies
  std::size_t running = 0;
  std::vector<std::exception_ptr> errors;
  bool failed = false;
  std::atomic<task_base*> waiting{nullptr};  // the task in wait(), woken exactly once

  ~group_state();
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
    self = h.promise().owner;
    return suspend(h);
  }
  void await_resume() { disarm(self); }
  bool suspend(std::coroutine_handle<> h);
};

}  // namespace detail

class task_group {
 public:
  task_group() : s_(std::make_shared<detail::group_state>()) {}
  ~task_group();
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  template <class T>
  task_handle<T> spawn(task<T> t, task_options opts = {}) {
    task_handle<T> h = baton::spawn(std::move(t), std::move(opts));
    detail::group_state::add(s_, h.base());
    return h;
  }

  /// Waits for every child; rethrows the first failure.
  [[nodiscard]] task<void> wait();

  /// Cancels every running child.
  void cancel() noexcept { s_->cancel_children(); }

  /// Every failure so far, in the order they happened.
  std::vector<std::exception_ptr> errors() const;

 private:
  std::shared_ptr<detail::group_state> s_;
};

}  // namespace baton
