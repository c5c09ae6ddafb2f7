// SPDX-License-Identifier: BSL-1.0
// gather(): wait for several tasks and collect their results; like asyncio.gather.
#pragma once

// Contract:
//   co_await gather(h1, h2, ...)        -> std::tuple<R1, R2, ...> (void results: std::monostate)
//   co_await gather(vector of handles)  -> std::vector<R>
//   co_await gather(return_exceptions, h1, ...) -> std::tuple<outcome<R1>, ...>, where
//                  outcome<R> = std::variant<R, std::exception_ptr>: failures are returned.
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
#include <baton/errors.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <exception>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

namespace baton {

template <class T>
using result_or_monostate = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

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

template <class T>
task<outcome<T>> outcome_of(task_handle<T> h) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await h;
      co_return outcome<T>(std::in_place_index<0>);
    } else {
      co_return outcome<T>(std::in_place_index<0>, co_await h);
    }
  } catch (...) {
    co_return outcome<T>(std::in_place_index<1>, std::current_exception());
  }
}

template <class... H>
void cancel_all(H&... hs) noexcept {
  (hs.cancel(), ...);
}

}  // namespace detail

template <class... T>
[[nodiscard]] task<std::tuple<result_or_monostate<T>...>> gather(task_handle<T>... hs) {
  try {
    // Braced initialisation evaluates (and so awaits) left to right.
    co_return std::tuple<result_or_monostate<T>...>{co_await detail::value_of(hs)...};
  } catch (const cancelled_error&) {
    detail::cancel_all(hs...);
    throw;
  }
}

template <class... T>
[[nodiscard]] task<std::tuple<outcome<T>...>> gather(return_exceptions_t, task_handle<T>... hs) {
  detail::task_base* self = co_await detail::this_task{};
  std::tuple<outcome<T>...> r{co_await detail::outcome_of(hs)...};
  // A cancellation of the caller was turned into an outcome by the awaited task: pass it on.
  if (detail::cancelling(self) != 0) {
    detail::cancel_all(hs...);
    throw cancelled_error();
  }
  co_return r;
}

template <class T>
[[nodiscard]] task<std::vector<result_or_monostate<T>>> gather(std::vector<task_handle<T>> hs) {
  std::vector<result_or_monostate<T>> out;
  out.reserve(hs.size());
  try {
    for (auto& h : hs) out.push_back(co_await detail::value_of(h));
  } catch (const cancelled_error&) {
    for (auto& h : hs) h.cancel();
    throw;
  }
  co_return out;
}

}  // namespace baton
