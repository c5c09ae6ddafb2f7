// SPDX-License-Identifier: BSL-1.0
// gather(): wait for several tasks and collect their results; like asyncio.gather.
#pragma once

// Contract:
//   co_await gather(h1, h2, ...)        -> std::tuple<R1, R2, ...> (void results: std::monostate)
//   co_await gather(vector of handles)  -> std::vector<R>
//   co_await gather(return_exceptions, h1, ...) -> std::tuple<outcome<R1>, ...>, where
//                  outcome<R> = std::variant<R, std::exception_ptr>: failures are returned.
//   co_await gather(f(), g())           -> the same for plain tasks: each is spawned first
//                  (left to right, when the gather is awaited), as asyncio.gather(coros) does;
//                  also with return_exceptions. Named tasks go in as std::move(t).
//   Context:      each task runs in its own context (as spawned); the caller's is untouched.
//   Exceptions:   the first failure in argument order is rethrown (the other tasks go on, as
//                 in asyncio); never with return_exceptions, except cancelled_error when the
//                 caller itself is cancelled.
//   Cancellation: cancelling the caller cancels every gathered task.
//   Thread-safety: used by the awaiting task only; the handles may be shared.
//
// Example:
//   auto [a, b] = co_await baton::gather(baton::spawn(f()), baton::spawn(g()));

#include <baton/detail/awaitable_traits.hpp>
#include <baton/detail/cancel.hpp>
#include <baton/errors.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <cstdint>
#include <exception>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

namespace baton {

/// What gather() yields for a task_handle<T>: T, or std::monostate for a void task (a tuple
/// or vector element cannot be void).
template <class T>
using result_or_monostate = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

/// What gather(return_exceptions, ...) yields for a task_handle<T>: its result, or the
/// exception it ended with.
template <class T>
using outcome = std::variant<result_or_monostate<T>, std::exception_ptr>;

struct return_exceptions_t {};
inline constexpr return_exceptions_t return_exceptions{};

namespace detail {

template <class T>
task<result_or_monostate<T>> value_of(task_handle<T> h) {
  if constexpr (std::is_void_v<T>) {
    co_await h;
    co_return std::monostate{};
  } else {
    co_return co_await h;
  }
}

/// A handle's outcome; a cancellation of the gathering task itself (newer than `entry`
/// requests) is rethrown rather than returned.
template <class T>
task<outcome<T>> outcome_of(task_handle<T> h, task_base* self, std::uint32_t entry) {
  std::exception_ptr failure;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await h;
      co_return outcome<T>(std::in_place_index<0>);
    } else {
      co_return outcome<T>(std::in_place_index<0>, co_await h);
    }
  } catch (const cancelled_error&) {
    if (cancelling(self) > entry) throw;
    failure = std::current_exception();
  } catch (...) {
    failure = std::current_exception();
  }
  co_return outcome<T>(std::in_place_index<1>, failure);
}

template <class... H>
void cancel_all(H&... hs) noexcept {
  (hs.cancel(), ...);
}

}  // namespace detail

template <class... T>
[[nodiscard]] task<std::tuple<result_or_monostate<T>...>> gather(task_handle<T>... hs) {
  detail::task_base* self = detail::running_task;
  const std::uint32_t entry = detail::cancelling(self);
  try {
    // Braced initialisation evaluates (and so awaits) left to right.
    co_return std::tuple<result_or_monostate<T>...>{co_await detail::value_of(hs)...};
  } catch (const cancelled_error&) {
    // Only when this task was cancelled are the others cancelled too; a gathered task that
    // was cancelled by someone else just fails the gather, as in asyncio.
    if (detail::cancelling(self) > entry) detail::cancel_all(hs...);
    throw;
  }
}

template <class... T>
[[nodiscard]] task<std::tuple<outcome<T>...>> gather(return_exceptions_t, task_handle<T>... hs) {
  detail::task_base* self = detail::running_task;
  const std::uint32_t entry = detail::cancelling(self);
  try {
    co_return std::tuple<outcome<T>...>{co_await detail::outcome_of(hs, self, entry)...};
  } catch (const cancelled_error&) {
    detail::cancel_all(hs...);  // this task was cancelled: so is everything it gathers
    throw;
  }
}

/// gather(f(), g()) of plain tasks: spawns each (in argument order, in copies of the caller's
/// context, when the gather is awaited) and gathers them, as asyncio.gather(coros) does.
template <class... T>
requires(sizeof...(T) > 0)
    [[nodiscard]] task<std::tuple<result_or_monostate<T>...>> gather(task<T>... ts) {
  std::tuple<task_handle<T>...> hs{spawn(std::move(ts))...};  // braced: left to right
  co_return co_await std::apply([](auto&... h) { return gather(h...); }, hs);
}

template <class... T>
requires(sizeof...(T) > 0)
    [[nodiscard]] task<std::tuple<outcome<T>...>> gather(return_exceptions_t, task<T>... ts) {
  std::tuple<task_handle<T>...> hs{spawn(std::move(ts))...};
  co_return co_await std::apply([](auto&... h) { return gather(return_exceptions, h...); }, hs);
}

template <class T>
[[nodiscard]] task<std::vector<result_or_monostate<T>>> gather(std::vector<task_handle<T>> hs) {
  detail::task_base* self = detail::running_task;
  const std::uint32_t entry = detail::cancelling(self);
  std::vector<result_or_monostate<T>> out;
  out.reserve(hs.size());
  try {
    for (auto& h : hs) out.push_back(co_await detail::value_of(h));
  } catch (const cancelled_error&) {
    if (detail::cancelling(self) > entry) {
      for (auto& h : hs) h.cancel();
    }
    throw;
  }
  co_return out;
}

}  // namespace baton
