// SPDX-License-Identifier: BSL-1.0
// task<T>: baton's lazy coroutine type.
#pragma once

// Contract:
//   A function returning task<T> is a coroutine that starts only when awaited or spawned.
//   task<T> is move-only and [[nodiscard]]: dropping it unstarted destroys the coroutine.
//   co_await std::move(t) (inside another task) runs t to completion as part of the awaiting
//   task (co_await on a named task does not compile; say std::move(t)). It takes t's coroutine:
//   t is empty afterwards, and the finished frame is destroyed at the end of the co_await.
//     Context:      t shares the awaiter's context; a set() inside t is visible afterwards,
//                   exactly like awaiting a coroutine in Python.
//     Exceptions:   t's exception is rethrown at the co_await; runtime_error when t is empty
//                   (moved from, default-constructed or already awaited).
//     Cancellation: t belongs to the awaiting task; cancelling that task cancels t's current
//                   suspension point.
//     Cost:         symmetric transfer in and out (no stack growth: an await chain 200 000 deep
//                   is fine), no scheduler round trip, no context swap.
//   To run t concurrently, spawn() it (spawn.hpp); to run a program, baton::run() (run.hpp).
// Thread-safety: a task object is used by one thread at a time.
//
// Example:
//   baton::task<int> answer() { co_return 42; }
//   baton::task<> main_task() { int v = co_await answer(); }

#include <baton/detail/promise.hpp>

#include <coroutine>
#include <typeinfo>
#include <utility>

namespace baton {

template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::promise<T>;
  using value_type = T;

  task() noexcept = default;
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  /// A named task passed where a task is taken (spawn, gather, wait_for, a parameter): one
  /// line saying what to write, instead of "use of deleted function".
  template <class U = T>
  task(task<U>&) {
    static_assert(detail::dependent_false<U>,
                  "baton: a task is move-only and runs once: pass a named task as std::move(t)");
  }
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  ~task() {
    // co_await and spawn() take the frame out, so a frame still here never started.
    if (h_) [[unlikely]] {
      detail::report_never_awaited(typeid(T));  // debug mode
      h_.destroy();
    }
  }

  /// Whether this object holds a coroutine (false after a move, an await or spawn()).
  explicit operator bool() const noexcept { return static_cast<bool>(h_); }

  /// Takes the frame: afterwards this task is empty, and the frame lives until the end of the
  /// co_await expression.
  auto operator co_await() && noexcept { return detail::task_awaiter<T>(std::exchange(h_, {})); }
  /// co_await t on a named task: one line saying what to write.
  template <class U = T>
  auto operator co_await() & {
    static_assert(detail::dependent_false<U>,
                  "baton: co_await on a named task: write co_await std::move(t) (a task runs "
                  "once)");
  }

 private:
  friend promise_type;
  friend struct detail::access;  // release(), for spawn()
  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

namespace detail {
template <class T>
task<T> promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<promise<T>>::from_promise(*this));
}
inline task<void> promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<promise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace baton
