// SPDX-License-Identifier: BSL-1.0
// to_thread(f, a...) and run_in_executor(ex, f, a...): blocking work off the loop, in context.
#pragma once

// Contract: co_await to_thread(f, a...) runs f(a...) on the loop's blocking pool (size from
// run_options::blocking_threads, default min(32, cores + 4) like Python's default executor);
// run_in_executor(ex, f, a...) does the same on any Asio executor (a thread_pool's, a strand).
//   Context:      f runs inside a fresh copy of the awaiting task's context, installed for the
//                 call and removed after it, also when f throws; a set() inside f never reaches
//                 the task, and the pool thread keeps nothing for its next job.
//   Exceptions:   f's exception is rethrown in the task; cancelled_error when the task is
//                 cancelled (f's result, if it comes later, is dropped).
//   Cancellation: the task gets cancelled_error at once. The pool thread is not interrupted,
//                 but if f takes a std::stop_token as its first parameter, stop is requested on
//                 it. run() waits for running jobs when it shuts the pool down.
//   Thread-safety: f runs on a pool thread; the task resumes on a loop thread.
//
// Example:
//   auto rows = co_await baton::to_thread([](std::string q) { return db.query(q); }, sql);

#include <baton/context.hpp>
#include <baton/detail/asio_glue.hpp>
#include <baton/detail/cancel.hpp>
#include <baton/task.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <exception>
#include <functional>
#include <optional>
#include <stop_token>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace baton {

namespace detail {

boost::asio::thread_pool& blocking_pool_of(loop& l);

/// Shared by the awaiting task and the job: whoever claims first (the job finishing, or a
/// cancellation) wakes the task; the last of the two frees it.
struct offload_base {
  std::atomic<int> refs{2};
  std::atomic<bool> claimed{false};
  task_base* waiting = nullptr;
  std::stop_source stop;
  std::exception_ptr error;

  virtual ~offload_base() = default;
  void release() noexcept {
    // acq_rel: the last owner sees the other's writes (the result) before deleting.
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void finished() noexcept {  // from the job's thread
    // acq_rel: publishes the result to the task that this claim wakes.
    if (!claimed.exchange(true, std::memory_order_acq_rel)) schedule(waiting);
  }
  static void on_cancel(task_base*, void* self) noexcept {
    auto* s = static_cast<offload_base*>(self);
    s->stop.request_stop();
    if (!s->claimed.exchange(true, std::memory_order_acq_rel)) schedule(s->waiting);
  }
  static constexpr await_kind kind{"to_thread", &on_cancel};
};

template <class R>
struct offload_state final : offload_base {
  std::optional<std::conditional_t<std::is_void_v<R>, std::monostate, R>> value;
};

// The job calls f once, so the arguments are handed over as rvalues; a reference result is
// returned as a copy (the referent may not outlive the job).
template <class F, class... A>
using offload_result_t =
    std::decay_t<typename std::conditional_t<std::is_invocable_v<F&, std::stop_token, A&&...>,
                                             std::invoke_result<F&, std::stop_token, A&&...>,
                                             std::invoke_result<F&, A&&...>>::type>;

template <class Executor, class F, class... A>
class [[nodiscard]] offload_awaitable {
  using result_type = offload_result_t<F, A...>;
  using state = offload_state<result_type>;

 public:
  template <class G, class... B>
  offload_awaitable(std::optional<Executor> ex, G&& f, B&&... a)
      : ex_(std::move(ex)), f_(std::forward<G>(f)), args_(std::forward<B>(a)...) {}
  offload_awaitable(offload_awaitable&&) = default;
  ~offload_awaitable() {
    if (s_ != nullptr) s_->release();
  }

  bool await_ready() const noexcept { return false; }

  template <baton_promise P>
  bool await_suspend(std::coroutine_handle<P> h) {
    task_base* t = running_task;
    if (!ex_) ex_.emplace(blocking_pool_of(*t->owner_loop).get_executor());
    s_ = new state;
    s_->waiting = t;
    bool posted = false;
    const bool suspended = arm(t, h, offload_base::kind, s_, [&] {
      boost::asio::post(*ex_, [s = s_, snapshot = copy_context(), f = std::move(f_),
                               args = std::move(args_)]() mutable {
        snapshot.run([&] {
          try {
            s->value.emplace(call(f, s->stop.get_token(), args));
          } catch (...) {
            s->error = std::current_exception();
          }
        });
        s->finished();
        s->release();
      });
      posted = true;
      return true;
    });
    if (!posted) s_->release();  // the job never got its reference
    return suspended;
  }

  result_type await_resume() {
    disarm(s_->waiting);  // cancelled_error first: the job's late result is dropped
    // Take the error out: the exception then lives and dies on this side only, whichever
    // thread drops the shared state last.
    if (s_->error) std::rethrow_exception(std::exchange(s_->error, nullptr));
    if constexpr (!std::is_void_v<result_type>) return std::move(*s_->value);
  }

 private:
  static std::conditional_t<std::is_void_v<result_type>, std::monostate, result_type> call(
      F& f, std::stop_token st, std::tuple<A...>& args) {
    return std::apply(
        [&](A&... a)
            -> std::conditional_t<std::is_void_v<result_type>, std::monostate, result_type> {
          if constexpr (std::is_void_v<result_type>) {
            if constexpr (std::is_invocable_v<F&, std::stop_token, A&&...>) {
              std::invoke(f, std::move(st), std::move(a)...);
            } else {
              std::invoke(f, std::move(a)...);
            }
            return std::monostate{};
          } else if constexpr (std::is_invocable_v<F&, std::stop_token, A&&...>) {
            return std::invoke(f, std::move(st), std::move(a)...);
          } else {
            return std::invoke(f, std::move(a)...);
          }
        },
        args);
  }

  std::optional<Executor> ex_;
  F f_;
  std::tuple<A...> args_;
  state* s_ = nullptr;
};

}  // namespace detail

template <class F, class... A>
[[nodiscard]] auto to_thread(F&& f, A&&... a) {
  using ex = boost::asio::thread_pool::executor_type;
  return detail::offload_awaitable<ex, std::decay_t<F>, std::decay_t<A>...>(
      std::nullopt, std::forward<F>(f), std::forward<A>(a)...);
}

template <class Executor, class F, class... A>
[[nodiscard]] auto run_in_executor(Executor ex, F&& f, A&&... a) {
  return detail::offload_awaitable<Executor, std::decay_t<F>, std::decay_t<A>...>(
      std::optional<Executor>(std::move(ex)), std::forward<F>(f), std::forward<A>(a)...);
}

}  // namespace baton
