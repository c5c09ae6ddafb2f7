// SPDX-License-Identifier: BSL-1.0
// The machinery of to_thread() and run_in_executor(): the call's shared state and its awaitable.
#pragma once

#include <baton/context.hpp>
#include <baton/detail/blocking_job.hpp>
#include <baton/detail/cancel.hpp>
#include <baton/task.hpp>

#include <boost/asio/post.hpp>

#include <atomic>
#include <exception>
#include <functional>
#include <optional>
#include <stop_token>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace baton::detail {

/// The state of one call, shared by the awaiting task and the job: the call's only heap block
/// (the job's queue link, the context snapshot, f, its arguments and its result all live in
/// it). Whoever claims first (the job finishing, or a cancellation) wakes the task; the last of
/// the two frees it.
struct offload_base : blocking_job, shared_wake {
  bool on_loop_pool = false;  // to_thread: the job runs on the loop's own pool (wake_from_pool)
  std::exception_ptr error;
  // The fresh copy of the task's context that f runs in: a cell of its own, sharing the task's
  // immutable map, entered on the pool thread for the call. Nothing else ever retains it (no
  // API hands out the current cell), so it lives and dies with this state.
  context_cell snapshot;

  // A thread hand-off: the snapshot leaves out inherit::tasks and inherit::never vars.
  offload_base() {
    if (const context_cell* cur = current_cell) {
      snapshot.root = capture_root(cur->root, hand_off::thread);
    }
  }
  virtual ~offload_base() = default;
  /// Requests stop on f's std::stop_token, if f takes one.
  virtual void request_stop() noexcept {}

  void release() noexcept {
    if (drop()) delete this;
  }
  void finished() noexcept {  // from the job's thread
    if (!claim()) return;
    if (on_loop_pool) {
      wake_from_pool(waiting);
    } else {
      schedule(waiting);
    }
  }
  static void on_cancel(task_base*, void* self) noexcept {
    auto* s = static_cast<offload_base*>(self);
    s->request_stop();
    if (s->claim()) schedule(s->waiting);
  }
  static constexpr await_kind kind{"to_thread", &on_cancel};
};

template <class F, class... A>
inline constexpr bool takes_stop_token_v = std::is_invocable_v<F&, std::stop_token, A&&...>;

// The job calls f once, so the arguments are handed over as rvalues; a reference result is
// returned as a copy (the referent may not outlive the job).
template <class F, class... A>
using offload_result_t =
    std::decay_t<typename std::conditional_t<takes_stop_token_v<F, A...>,
                                             std::invoke_result<F&, std::stop_token, A&&...>,
                                             std::invoke_result<F&, A&&...>>::type>;

/// What f gets for its stop token: a std::stop_source only when f takes a token (the source's
/// shared state is a heap block of its own, which a call that cannot use it does not pay for).
template <bool Stoppable>
struct offload_stop {
  std::stop_token token() const noexcept { return {}; }
  void request() noexcept {}
};
template <>
struct offload_stop<true> {
  std::stop_source source;
  std::stop_token token() const noexcept { return source.get_token(); }
  void request() noexcept { source.request_stop(); }
};

template <class F, class... A>
struct offload_state final : offload_base {
  using result_type = offload_result_t<F, A...>;
  using stored_result =
      std::conditional_t<std::is_void_v<result_type>, std::monostate, result_type>;

  offload_state(F&& fn, std::tuple<A...>&& a) : f(std::move(fn)), args(std::move(a)) {
    run = &run_job;
  }
  void request_stop() noexcept override { stop.request(); }

  /// The job: f(args...) inside the snapshot, then the claim, then this side's reference.
  static void run_job(blocking_job* j) noexcept {
    auto* s = static_cast<offload_state*>(j);
    context_cell* const prev = current_cell;
    (void)try_enter(&s->snapshot);  // a fresh cell: nobody else can have it entered
    sync_mirrors();                 // before f runs
    try {
      s->value.emplace(s->call());
    } catch (...) {
      s->error = std::current_exception();
    }
    leave(&s->snapshot, prev);
    sync_mirrors();  // the pool thread's own context again
    s->finished();
    s->release();
  }

  stored_result call() {
    return std::apply(
        [&](A&... a) -> stored_result {
          if constexpr (std::is_void_v<result_type>) {
            if constexpr (takes_stop_token_v<F, A...>) {
              std::invoke(f, stop.token(), std::move(a)...);
            } else {
              std::invoke(f, std::move(a)...);
            }
            return std::monostate{};
          } else if constexpr (takes_stop_token_v<F, A...>) {
            return std::invoke(f, stop.token(), std::move(a)...);
          } else {
            return std::invoke(f, std::move(a)...);
          }
        },
        args);
  }

  F f;
  std::tuple<A...> args;
  std::optional<stored_result> value;
  [[no_unique_address]] offload_stop<takes_stop_token_v<F, A...>> stop;
};

/// The executor slot of to_thread's awaitable: it runs on the loop's own pool.
struct loop_pool {};

/// Executor = loop_pool: the loop's own blocking pool (to_thread); otherwise an Asio executor.
template <class Executor, class F, class... A>
class [[nodiscard]] offload_awaitable {
  using state = offload_state<F, A...>;
  using result_type = typename state::result_type;
  static constexpr bool on_loop_pool = std::is_same_v<Executor, loop_pool>;

 public:
  template <class G, class... B>
  offload_awaitable(Executor ex, G&& f, B&&... a)
      : ex_(std::move(ex)), f_(std::forward<G>(f)), args_(std::forward<B>(a)...) {}
  offload_awaitable(offload_awaitable&&) = default;
  ~offload_awaitable() {
    if (s_ != nullptr) s_->release();
  }

  bool await_ready() const noexcept { return false; }

  template <baton_promise P>
  bool await_suspend(std::coroutine_handle<P> h) {
    task_base* t = running_task;
    s_ = new state(std::move(f_), std::move(args_));  // also takes the context snapshot
    s_->waiting = t;
    s_->on_loop_pool = on_loop_pool;
    bool submitted = false;
    const bool suspended = arm(t, h, offload_base::kind, s_, [&] {
      if constexpr (on_loop_pool) {
        submit_blocking(*t->owner_loop, s_);
      } else {
        boost::asio::post(ex_, [s = s_]() noexcept { state::run_job(s); });
      }
      submitted = true;
      return true;
    });
    if (!submitted) s_->release();  // the job never got its reference
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
  [[no_unique_address]] Executor ex_;
  F f_;
  std::tuple<A...> args_;
  state* s_ = nullptr;
};

/// Whether the job can call f with its own copies of the arguments (as rvalues), with or
/// without a leading std::stop_token.
template <class F, class... A>
concept offload_invocable =
    std::is_invocable_v<F&, A&&...> || std::is_invocable_v<F&, std::stop_token, A&&...>;

template <class F>
inline constexpr bool offload_false = false;

template <class F, class... A>
constexpr auto check_offload_arguments() {  // auto: instantiated (and fails) at once
  static_assert(offload_false<F>,
                "baton: to_thread/run_in_executor: f cannot take these arguments: the job gets "
                "its own copies (rvalues), so take them by value or const&, or pass std::ref(x)");
}
}  // namespace baton::detail
