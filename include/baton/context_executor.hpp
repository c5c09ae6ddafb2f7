// SPDX-License-Identifier: BSL-1.0
// context_executor<Ex>: any Asio executor, made to carry the submitter's context per job.
#pragma once

// Contract: wrap any Asio executor (a thread_pool's, a strand, the loop's own, an
// any_io_executor). Every submission through it (post, dispatch, defer, or a completion
// handler bound to it) snapshots the submitter's context at submission time (without its
// inherit::tasks and inherit::never vars: a thread hand-off), and the job runs
// in a fresh copy of that snapshot. A job never sees another job's values, nor values a
// previous job left on the same pool thread: unlike a per-thread initializer, the context is
// captured per submission. Sets inside a job never reach the submitter.
//   Thread-safety: as the wrapped executor.
//   Cost: one context copy (O(1)) per submission plus one enter/leave per job.
//
// Example:
//   boost::asio::thread_pool pool(4);
//   auto ex = baton::make_context_executor(pool.get_executor());
//   boost::asio::post(ex, [] { log("runs with the poster's request id"); });

#include <baton/context.hpp>
#include <baton/detail/executor_adaptor.hpp>

#include <boost/asio/execution.hpp>

#include <type_traits>
#include <utility>

namespace baton {

template <class Executor>
class context_executor : public detail::executor_adaptor<context_executor, Executor> {
 public:
  using inner_executor_type = Executor;

  explicit context_executor(Executor ex) noexcept(std::is_nothrow_move_constructible_v<Executor>)
      : detail::executor_adaptor<context_executor, Executor>(std::move(ex)) {}

  const Executor& get_inner_executor() const noexcept { return this->ex_; }

  template <class F>
  void execute(F&& f) const {
    boost::asio::execution::execute(
        // The snapshot is this job's own copy (made at submission), so the job runs in it
        // directly: one copy per submission.
        this->ex_, [snapshot = detail::capture_context(detail::hand_off::thread),
                    fn = std::decay_t<F>(std::forward<F>(f))]() mutable { snapshot.run(fn); });
  }

 private:
  friend class detail::executor_adaptor<context_executor, Executor>;
  template <class Other>
  static context_executor<Other> rewrap(Other ex) {
    return context_executor<Other>(std::move(ex));
  }
  // Each job captures its own context at submission: no context of the adaptor's to compare.
  bool same_context(const context_executor&) const noexcept { return true; }
};

template <class Executor>
[[nodiscard]] context_executor<Executor> make_context_executor(Executor ex) {
  return context_executor<Executor>(std::move(ex));
}

}  // namespace baton
