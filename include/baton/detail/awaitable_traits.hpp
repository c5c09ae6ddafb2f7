// SPDX-License-Identifier: BSL-1.0
// What co_await of an awaitable yields, and the calling task without suspending.
#pragma once

#include <baton/detail/task_base.hpp>
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

/// Withdraws one cancellation request (asyncio's Task.uncancel()); returns the requests left.
/// When no more than `floor` are left (requests older than the caller's interest, already
/// delivered), a pending, undelivered cancellation is withdrawn too.
std::uint32_t uncancel(task_base* t, std::uint32_t floor = 0) noexcept;

/// How many cancellation requests t has (asyncio's Task.cancelling()).
std::uint32_t cancelling(task_base* t) noexcept;

}  // namespace baton::detail
