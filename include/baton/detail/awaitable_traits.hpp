// SPDX-License-Identifier: BSL-1.0
// What co_await of an awaitable yields inside a task (get_awaiter, await_result_t).
#pragma once

#include <baton/detail/cancel.hpp>
#include <baton/task.hpp>

#include <coroutine>
#include <type_traits>
#include <utility>

namespace baton::detail {

/// The awaiter of a, as co_await takes it (the awaitable itself when it has no operator
/// co_await).
template <class A>
decltype(auto) get_awaiter(A&& a) {
  return awaiter_of(std::forward<A>(a), [](A&& self) -> A&& { return std::forward<A>(self); });
}

/// The type `co_await std::declval<A>()` yields inside a task.
template <class A>
using await_result_t = decltype(get_awaiter(std::declval<A>()).await_resume());

}  // namespace baton::detail
