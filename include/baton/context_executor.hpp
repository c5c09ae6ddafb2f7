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

#include <boost/asio/execution.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>

#include <type_traits>
#include <utility>

namespace baton {

template <class Executor>
class context_executor {
 public:
  using inner_executor_type = Executor;

  explicit context_executor(Executor ex) noexcept(std::is_nothrow_move_constructible_v<Executor>)
      : ex_(std::move(ex)) {}

  const Executor& get_inner_executor() const noexcept { return ex_; }

  template <class F>
  void execute(F&& f) const {
    boost::asio::execution::execute(
        // The snapshot is this job's own copy (made at submission), so the job runs in it
        // directly: one copy per submission.
        ex_, [snapshot = detail::capture_context(detail::hand_off::thread),
              fn = std::decay_t<F>(std::forward<F>(f))]() mutable { snapshot.run(fn); });
  }

  template <class Property>
  auto query(const Property& p) const
      -> decltype(boost::asio::query(std::declval<const Executor&>(), p)) {
    return boost::asio::query(ex_, p);
  }

  template <class Property>
  auto require(const Property& p) const -> context_executor<
      std::decay_t<decltype(boost::asio::require(std::declval<const Executor&>(), p))>> {
    return context_executor<std::decay_t<decltype(boost::asio::require(ex_, p))>>(
        boost::asio::require(ex_, p));
  }

  template <class Property>
  auto prefer(const Property& p) const -> context_executor<
      std::decay_t<decltype(boost::asio::prefer(std::declval<const Executor&>(), p))>> {
    return context_executor<std::decay_t<decltype(boost::asio::prefer(ex_, p))>>(
        boost::asio::prefer(ex_, p));
  }

  friend bool operator==(const context_executor& a, const context_executor& b) noexcept {
    return a.ex_ == b.ex_;
  }
  friend bool operator!=(const context_executor& a, const context_executor& b) noexcept {
    return !(a == b);
  }

 private:
  Executor ex_;
};

template <class Executor>
[[nodiscard]] context_executor<Executor> make_context_executor(Executor ex) {
  return context_executor<Executor>(std::move(ex));
}

}  // namespace baton
