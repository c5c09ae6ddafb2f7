// SPDX-License-Identifier: BSL-1.0
// What co_await of an awaitable yields inside a task (get_awaiter, await_result_t).
#pragma once

#include <baton/detail/cancel.hpp>
#include <baton/task.hpp>

#include <coroutine>
#include <type_traits>
#include <utility>

namespace baton::detail {

template <class A>
decltype(auto) get_awaiter(A&& a) {
  if constexpr (requires { std::forward<A>(a).operator co_await(); }) {
    return std::forward<A>(a).operator co_await();
  } else if constexpr (requires { operator co_await(std::forward<A>(a)); }) {
    return operator co_await(std::forward<A>(a));
  } else {
    return std::forward<A>(a);
  }
}

/// The type `co_await std::declval<A>()` yields inside a task.
template <class A>
using await_result_t = decltype(get_awaiter(std::declval<A>()).await_resume());

}  // namespace baton::detail
