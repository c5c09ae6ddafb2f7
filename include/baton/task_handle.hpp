// SPDX-License-Identifier: BSL-1.0
// task_handle<T>: what spawn() returns; like asyncio.Task.
#pragma once

// Contract:
//   done()         the task finished (returned, failed or was cancelled).
//   cancelled()    it finished by cancellation (cancelled_error escaped its body, or it
//                  returned while a cancel() was still undelivered).
//   cancel()       requests cancellation: cancelled_error is thrown at the task's current
//                  suspension point, or its next one, or before its first statement if it has
//                  not started; a task that returns before reaching one ends cancelled (as in
//                  asyncio). false when the task already finished.
//   get_context()  the context the task runs in (its private copy, or the one given to spawn).
//   name()         the name given to spawn(), or "task-<id>".
//   co_await h     waits for the task; returns a copy of its result or rethrows its exception
//                  (cancelled_error if it was cancelled). Any number of tasks may await one
//                  handle, at once or later.
//     Context:      the awaiting task's context is untouched by the awaited task's sets.
//     Exceptions:   the awaited task's exception; cancelled_error when either is cancelled.
//     Cancellation: cancelling the awaiting task also cancels the awaited task (as asyncio
//                   does); wrap the handle in shield() to prevent that.
//     Thread-safety: handles may be copied, awaited and cancelled from any loop thread;
//                   done()/cancelled()/cancel() from any thread.
// The loop keeps the task alive until it finishes, even when every handle is dropped.
// A failure nobody retrieved is reported through the loop's exception handler.
//
// Example:
//   auto h = baton::spawn(fetch(url));
//   h.cancel();
//   try { co_await h; } catch (const baton::cancelled_error&) { /* ... */ }

#include <baton/context.hpp>
#include <baton/detail/cancel.hpp>
#include <baton/detail/task_base.hpp>
#include <baton/errors.hpp>
#include <baton/task.hpp>

#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace baton {

namespace detail {

template <class T>
struct task_state : task_base {
  std::optional<T> value;

  void take_result(std::coroutine_handle<> frame) noexcept override {
    // A failure is already in `error` (promise_base::unhandled_exception parked it there).
    if (error) return;
    auto& p = std::coroutine_handle<promise<T>>::from_address(frame.address()).promise();
    try {
      value.emplace(std::move(p.value));
    } catch (...) {
      error = std::current_exception();
    }
  }
};

/// A void task's result is that it finished without an error: nothing to store (so the
/// state is exactly a task_base).
template <>
struct task_state<void> : task_base {
  void take_result(std::coroutine_handle<>) noexcept override {}
};

/// A task state that carries its name (spawn()'s task_options::name, a gRPC call's method), so
/// naming a task takes no lock and no table: a shared pointer's 16 bytes in the state, which for
/// a void task is a third cache line.
template <class T>
struct named_task_state final : task_state<T> {
  explicit named_task_state(task_name_ref n) noexcept : name(std::move(n)) {
    this->flags |= task_base::named_flag;
  }
  named_task_state(const named_task_state&) = delete;
  named_task_state& operator=(const named_task_state&) = delete;
  // A failure report names the task: made here, before `name` goes (~task_base comes after).
  ~named_task_state() override { this->report_unretrieved_failure(); }

  const std::string* stored_name() const noexcept override { return name.get(); }

  const task_name_ref name;
};

/// Waits for a task to finish; the waiting task is rescheduled on notify.
struct join_waiter : waiter {
  task_base* waiting = nullptr;
  std::coroutine_handle<> h;
};

void notify_join(waiter* w) noexcept;
[[noreturn]] void throw_awaited_self();
/// The error to rethrow for a finished task: its exception (marks it retrieved).
std::exception_ptr retrieve_error(task_base* t) noexcept;
std::string task_name(const task_base* t);

/// co_await of a handle: waits for the task, then copies its result or rethrows its error.
template <class T>
struct join_awaiter : join_waiter {
  task_state<T>* s = nullptr;
  bool await_ready() const noexcept { return s->done(); }
  template <baton_promise P>
  bool await_suspend(std::coroutine_handle<P> handle) {
    task_base* self = running_task;
    if (self == s) throw_awaited_self();
    waiting = self;
    h = handle;
    notify = &notify_join;
    return arm(self, handle, task_await_kind, static_cast<task_base*>(s),
               [this] { return add_waiter(s, this); });
  }
  T await_resume() {
    if (waiting != nullptr) disarm(waiting);
    if (auto e = retrieve_error(s)) std::rethrow_exception(e);
    if constexpr (!std::is_void_v<T>) return *s->value;
  }
};

}  // namespace detail

template <class T = void>
class task_handle {
 public:
  using value_type = T;

  task_handle() noexcept = default;

  explicit operator bool() const noexcept { return static_cast<bool>(s_); }
  bool done() const noexcept { return s_->done(); }
  bool cancelled() const noexcept { return s_->cancelled(); }
  bool cancel() noexcept { return detail::cancel(s_.get()); }
  context get_context() const noexcept {
    detail::context_cell* const c = s_->ctx();
    detail::retain(c);
    return detail::access::adopt(c);
  }
  std::string name() const { return detail::task_name(s_.get()); }
  /// The task's id: task_info::id in all_tasks(), and the number in its default name.
  std::uint64_t id() const noexcept { return s_->id; }

  /// The result of a finished task (rethrows its exception). Precondition: done().
  T result() const {
    if (!s_->done()) throw baton::runtime_error("baton: result() of a task that has not finished");
    if (auto e = detail::retrieve_error(s_.get())) std::rethrow_exception(e);
    if constexpr (!std::is_void_v<T>) return *state()->value;
  }

  detail::join_awaiter<T> operator co_await() const noexcept {
    detail::join_awaiter<T> a;
    a.s = state();
    return a;
  }

 private:
  friend struct detail::access;  // adopt_handle() and base(), for the runtime
  explicit task_handle(detail::task_state<T>* adopt) noexcept : s_(adopt) {}
  detail::task_state<T>* state() const noexcept {
    return static_cast<detail::task_state<T>*>(s_.get());
  }
  detail::counted_ref<detail::task_base, &detail::retain_task, &detail::release_task> s_;
};

}  // namespace baton
