// SPDX-License-Identifier: BSL-1.0
// to_thread(f, a...) and run_in_executor(ex, f, a...): blocking work off the loop, in context.
#pragma once

// Contract: co_await to_thread(f, a...) runs f(a...) on the loop's blocking pool (size from
// run_options::blocking_threads, default min(32, cores + 4) like Python's default executor);
// run_in_executor(ex, f, a...) does the same on any Asio executor (a thread_pool's, a strand).
//   Context:      f runs inside a fresh copy of the awaiting task's context without its
//                 inherit::tasks and inherit::never vars (a thread hand-off), installed for the
//                 call and removed after it, also when f throws; a set() inside f never reaches
//                 the task, and the pool thread keeps nothing for its next job.
//   Exceptions:   f's exception is rethrown in the task; cancelled_error when the task is
//                 cancelled (f's result, if it comes later, is dropped).
//   Cancellation: the task gets cancelled_error at once. The pool thread is not interrupted,
//                 but if f takes a std::stop_token as its first parameter, stop is requested on
//                 it. run() waits for running jobs when it shuts the pool down.
//   Thread-safety: f runs on a pool thread; the task resumes on a loop thread.
// f receives the job's own copies of a... as rvalues: a parameter `T&` does not compile (one
// line says so); share an object with std::ref(x) if it outlives the await.
//
// Example:
//   auto rows = co_await baton::to_thread([](std::string q) { return db.query(q); }, sql);

#include <baton/detail/offload.hpp>

#include <type_traits>
#include <utility>

namespace baton {

template <class F, class... A>
[[nodiscard]] auto to_thread(F&& f, A&&... a) {
  if constexpr (!detail::offload_invocable<std::decay_t<F>, std::decay_t<A>...>) {
    detail::check_offload_arguments<F, A...>();
  } else {
    return detail::offload_awaitable<detail::loop_pool, std::decay_t<F>, std::decay_t<A>...>(
        detail::loop_pool{}, std::forward<F>(f), std::forward<A>(a)...);
  }
}

template <class Executor, class F, class... A>
[[nodiscard]] auto run_in_executor(Executor ex, F&& f, A&&... a) {
  if constexpr (!detail::offload_invocable<std::decay_t<F>, std::decay_t<A>...>) {
    detail::check_offload_arguments<F, A...>();
  } else {
    return detail::offload_awaitable<Executor, std::decay_t<F>, std::decay_t<A>...>(
        std::move(ex), std::forward<F>(f), std::forward<A>(a)...);
  }
}

}  // namespace baton
