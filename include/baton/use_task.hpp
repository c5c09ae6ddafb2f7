// SPDX-License-Identifier: BSL-1.0
// use_task: the completion token that makes every Asio async operation awaitable from a task.
#pragma once

// Contract: co_await obj.async_xxx(args..., baton::use_task) inside a task starts the
// operation and suspends the task until it completes; results follow asio::use_awaitable:
//   void(error_code)            -> void, a failing error_code thrown as boost::system::system_error
//   void(error_code, T)         -> T          void(error_code, T, U...) -> std::tuple<T, U...>
//   void(exception_ptr, T...)   -> the same, the exception rethrown
//   void(T...)                  -> as above without the error
//   Context:      the task's own context is current when the task resumes, on any loop thread.
//   Exceptions:   system_error for a failing error_code; cancelled_error when the task is
//                 cancelled (taking precedence over the operation's own result).
//   Cancellation: cancel() emits a terminal cancellation on the operation's per-operation
//                 cancellation slot (every Asio operation that supports it stops at once).
//   Thread-safety: the completion handler runs on a loop thread (its associated executor is
//                 the loop's, blocking.never, so it is never invoked inline).
// The operation object must be awaited right away (it holds the initiation's arguments).
// Every form Asio and Beast use works: operations that name the token's return_type (Beast,
// redirect_error) get a task<R> with the same results; as_tuple(use_task) returns the error
// with the values; use_task.as_default_on(obj) makes use_task an I/O object's default token.
//
// Example:
//   std::size_t n = co_await sock.async_read_some(boost::asio::buffer(buf), baton::use_task);

#include <type_traits>
#include <utility>

namespace baton {

struct use_task_t {
  constexpr use_task_t() noexcept = default;

  /// Executor adapter whose default completion token is use_task (as use_awaitable_t's).
  template <class InnerExecutor>
  struct executor_with_default : InnerExecutor {
    using default_completion_token_type = use_task_t;

    executor_with_default(const InnerExecutor& ex) noexcept : InnerExecutor(ex) {}
    template <class Other>
    requires(!std::is_same_v<Other, executor_with_default> &&
             std::is_convertible_v<Other, InnerExecutor>) executor_with_default(const Other& ex)
    noexcept : InnerExecutor(ex) {}
  };

  /// The I/O object type T with use_task as its default token: `as_default_on_t<tcp::socket>`.
  template <class T>
  using as_default_on_t =
      typename T::template rebind_executor<executor_with_default<typename T::executor_type>>::other;

  /// Moves an I/O object into its as_default_on_t twin: co_await s.async_read_some(buf).
  template <class T>
  static as_default_on_t<std::decay_t<T>> as_default_on(T&& object) {
    return as_default_on_t<std::decay_t<T>>(std::forward<T>(object));
  }
};

/// The completion token: `co_await timer.async_wait(baton::use_task)`.
inline constexpr use_task_t use_task{};

}  // namespace baton

// The operation a use_task initiation returns (it needs use_task_t complete).
#include <baton/detail/async_operation.hpp>
