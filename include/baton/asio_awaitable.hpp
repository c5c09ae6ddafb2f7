// SPDX-License-Identifier: BSL-1.0
// Awaiting an existing asio::awaitable<T> from a task, so baton can grow inside Asio code.
#pragma once

// Contract: inside a task, `co_await some_asio_awaitable()` runs the asio::awaitable on the
// task's loop (through co_spawn) and resumes the task with its result.
//   Context:      every step of the awaitable runs inside the awaiting task's own context (it
//                 is entered for each step), so it reads the task's values and a set() in it
//                 is visible to the task afterwards, as with awaiting a coroutine.
//   Exceptions:   the awaitable's exception is rethrown at the co_await.
//   Cancellation: cancelling the task emits a terminal cancellation into the awaitable's
//                 cancellation state (its own awaited operations stop).
//   Thread-safety: the awaitable's steps run on loop threads, one at a time.
//
// Example:
//   boost::asio::awaitable<int> legacy();           // existing Asio code
//   baton::task<> modern() { int v = co_await legacy(); }

#include <baton/context.hpp>
#include <baton/detail/asio_glue.hpp>
#include <baton/detail/executor_adaptor.hpp>
#include <baton/task.hpp>
#include <baton/use_task.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution.hpp>

#include <utility>

namespace baton {
namespace detail {

/// Runs every job inside one fixed context (the awaiting task's), entering it per job.
template <class Executor>
class in_context_executor : public executor_adaptor<in_context_executor, Executor> {
 public:
  in_context_executor(context ctx, Executor ex)
      : executor_adaptor<in_context_executor, Executor>(std::move(ex)), ctx_(std::move(ctx)) {}

  template <class F>
  void execute(F&& f) const {
    boost::asio::execution::execute(
        this->ex_,
        [ctx = ctx_, fn = std::decay_t<F>(std::forward<F>(f))]() mutable { ctx.run(fn); });
  }

 private:
  friend class executor_adaptor<in_context_executor, Executor>;
  template <class Other>
  in_context_executor<Other> rewrap(Other ex) const {
    return {ctx_, std::move(ex)};
  }
  bool same_context(const in_context_executor& o) const noexcept { return ctx_ == o.ctx_; }

  context ctx_;
};

}  // namespace detail

template <class T, class Executor>
auto detail::promise_base::await_transform(boost::asio::awaitable<T, Executor>&& a) {
  task_base* const t = running_task;
  context_cell* const c = t->ctx();
  retain(c);
  detail::in_context_executor<boost::asio::io_context::executor_type> ex(
      access::adopt(c), io_of(*t->owner_loop).get_executor());
  return boost::asio::co_spawn(Executor(ex), std::move(a), use_task);
}

}  // namespace baton
