// SPDX-License-Identifier: BSL-1.0
// bind_context(f): carry the current context into a callable that may run anywhere.
#pragma once

// Contract:
//   bind_context(f) captures a snapshot of the current context now (O(1)), without its
//   inherit::tasks and inherit::never vars (a thread hand-off), and returns a
//   callable; every call runs f in a FRESH copy of that snapshot, on whatever thread calls it,
//   and returns f's result. Calls may run concurrently on several threads: each has its own
//   copy, so a set() inside one call is seen by nobody else, not even the next call.
//   start_thread(f, a...) starts a std::jthread that runs f(a...) in a copy of the caller's
//   context, as bind_context takes it (f may take a std::stop_token first, as with std::jthread).
//   Exceptions:   f's own; the calling thread's context is restored also when f throws.
//   Thread-safety: the returned callable is copyable and may be called from any thread.
//
// Example:
//   pool.submit(baton::bind_context([] { audit("from the pool"); }));   // sees the user

#include <baton/context.hpp>

#include <concepts>
#include <functional>
#include <stop_token>
#include <thread>
#include <type_traits>
#include <utility>

namespace baton {

template <class F>
class context_bound {
 public:
  context_bound(context snapshot, F f) : snapshot_(std::move(snapshot)), f_(std::move(f)) {}

  template <class... A>
  requires std::invocable<F&, A...> std::invoke_result_t<F&, A...>
  operator()(A&&... a) { return snapshot_.copy().run(f_, std::forward<A>(a)...); }
  template <class... A>
  requires std::invocable<const F&, A...> std::invoke_result_t<const F&, A...>
  operator()(A&&... a) const { return snapshot_.copy().run(f_, std::forward<A>(a)...); }

  /// The snapshot each call starts from.
  const context& snapshot() const noexcept { return snapshot_; }

 private:
  context snapshot_;
  F f_;
};

template <class F>
[[nodiscard]] context_bound<std::decay_t<F>> bind_context(F&& f) {
  return context_bound<std::decay_t<F>>(detail::capture_context(detail::hand_off::thread),
                                        std::forward<F>(f));
}

template <class F, class... A>
[[nodiscard]] std::jthread start_thread(F&& f, A&&... a) {
  return std::jthread(bind_context(std::forward<F>(f)), std::forward<A>(a)...);
}

}  // namespace baton
