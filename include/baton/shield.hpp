// SPDX-License-Identifier: BSL-1.0
// shield(h): await a task without passing a cancellation on to it; like asyncio.shield.
#pragma once

// Contract: co_await shield(h) waits for h like co_await h, but cancelling the awaiting task
// only wakes the awaiter (with cancelled_error, at once); h's task goes on undisturbed.
//   Context:      as awaiting the handle: the awaiter's context is untouched.
//   Exceptions:   h's result or exception; cancelled_error when the awaiter is cancelled.
//   Cancellation: never reaches h's task.
//   Thread-safety: as task_handle.
//
// Example:
//   co_await baton::shield(commit_handle);   // a cancelled request still commits

#include <baton/detail/cancel.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <atomic>
#include <memory>

namespace baton {

namespace detail {

/// Shared by the awaiter and the awaited task's waiter list: whoever claims it first wakes
/// the awaiter; the awaited task frees it when it finishes.
struct shield_node : waiter, shared_wake {
  static void on_done(waiter* w) noexcept;
  static void on_cancel(task_base*, void* self) noexcept;
  static const await_kind kind;
  void release() noexcept;
};

bool shield_suspend(task_base* self, task_base* target, shield_node* node,
                    std::coroutine_handle<> h);

template <class T>
struct shield_awaiter {
  task_handle<T> h;
  task_base* self = nullptr;
  shield_node* node = nullptr;
  bool await_ready() const noexcept { return h.done(); }
  template <baton_promise P>
  bool await_suspend(std::coroutine_handle<P> co) {
    self = running_task;
    node = new shield_node;
    node->waiting = self;
    return shield_suspend(self, access::base(h), node, co);
  }
  T await_resume() {
    if (node != nullptr) {
      node->release();
      disarm(self);
    }
    return h.result();
  }
};

}  // namespace detail

template <class T>
[[nodiscard]] detail::shield_awaiter<T> shield(task_handle<T> h) {
  return detail::shield_awaiter<T>{std::move(h)};
}

}  // namespace baton
