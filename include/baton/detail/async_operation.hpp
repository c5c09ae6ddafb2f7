// SPDX-License-Identifier: BSL-1.0
// The machinery of use_task: the awaitable operation an Asio initiation returns, and the
// async_result that makes it.
#pragma once

#include <baton/use_task.hpp>
#include <baton/detail/asio_glue.hpp>
#include <baton/detail/cancel.hpp>
#include <baton/task.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/execution/blocking.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/system/system_error.hpp>

#include <exception>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace baton {

namespace detail {

template <class... Ts>
struct values_result {
  using type = std::tuple<Ts...>;
};
template <class T>
struct values_result<T> {
  using type = T;
};
template <>
struct values_result<> {
  using type = void;
};

/// Splits a completion signature into (error kind, values).
template <class Sig>
struct completion;
template <class... Ts>
struct completion<void(boost::system::error_code, Ts...)> {
  static constexpr int error_kind = 1;
  using values = std::tuple<std::decay_t<Ts>...>;
  using result = typename values_result<std::decay_t<Ts>...>::type;
};
template <class... Ts>
struct completion<void(std::exception_ptr, Ts...)> {
  static constexpr int error_kind = 2;
  using values = std::tuple<std::decay_t<Ts>...>;
  using result = typename values_result<std::decay_t<Ts>...>::type;
};
template <class... Ts>
struct completion<void(Ts...)> {
  static constexpr int error_kind = 0;
  using values = std::tuple<std::decay_t<Ts>...>;
  using result = typename values_result<std::decay_t<Ts>...>::type;
};

template <class Sig, class Initiation, class... Args>
class [[nodiscard]] async_operation {
  using traits = completion<Sig>;

 public:
  template <class I, class... A>
  requires(!std::is_same_v<std::decay_t<I>, async_operation>) explicit async_operation(I&& init,
                                                                                       A&&... args)
      : init_(std::forward<I>(init)), args_(std::forward<A>(args)...) {}

  /// Movable until awaited (the cancellation signal is fresh in the new object), so the
  /// operation can be passed to wait_for(), await() and other coroutines by value.
  async_operation(async_operation&& o) noexcept(
      std::is_nothrow_move_constructible_v<Initiation>&&
          std::is_nothrow_move_constructible_v<std::tuple<Args...>>)
      : init_(std::move(o.init_)), args_(std::move(o.args_)) {}
  async_operation& operator=(async_operation&&) = delete;

  /// The same operation as a task, for code that names the token's return_type (Beast's
  /// operations, redirect_error): one nested frame more, same results and cancellation.
  operator task<typename traits::result>() && { return as_task(std::move(*this)); }

  bool await_ready() const noexcept { return false; }

  template <baton_promise P>
  bool await_suspend(std::coroutine_handle<P> h) {
    t_ = running_task;
    return arm(t_, h, kind, this, [this] {
      std::apply(
          [this](auto&&... a) { std::move(init_)(handler{this}, std::forward<decltype(a)>(a)...); },
          std::move(args_));
      return true;
    });
  }

  typename traits::result await_resume() {
    disarm(t_);
    if constexpr (traits::error_kind == 1) {
      if (ec_) throw boost::system::system_error(ec_);
    } else if constexpr (traits::error_kind == 2) {
      if (ex_) std::rethrow_exception(ex_);
    }
    if constexpr (!std::is_void_v<typename traits::result>) {
      if constexpr (std::tuple_size_v<typename traits::values> == 1) {
        return std::move(std::get<0>(*values_));
      } else {
        return std::move(*values_);
      }
    }
  }

 private:
  struct handler {
    async_operation* op;

    using cancellation_slot_type = boost::asio::cancellation_slot;
    cancellation_slot_type get_cancellation_slot() const noexcept { return op->signal_.slot(); }

    using executor_type = boost::asio::io_context::executor_type;
    executor_type get_executor() const noexcept {
      return boost::asio::require(io_of(*op->t_->owner_loop).get_executor(),
                                  boost::asio::execution::blocking.never);
    }

    template <class... A>
    void operator()(A&&... a) {
      op->store(std::forward<A>(a)...);
      task_base* t = op->t_;
      {
        cancel_guard g(t);  // no cancellation may reach the finished operation's slot now
        op->signal_.slot().clear();
        t->hook = {};
      }
      schedule(t);
    }
  };

  template <class E, class... A>
  void store(E&& e, A&&... a) {
    if constexpr (traits::error_kind == 1) {
      ec_ = e;
      values_.emplace(std::forward<A>(a)...);
    } else if constexpr (traits::error_kind == 2) {
      ex_ = e;
      values_.emplace(std::forward<A>(a)...);
    } else {
      values_.emplace(std::forward<E>(e), std::forward<A>(a)...);
    }
  }
  void store() { values_.emplace(); }

  static task<typename traits::result> as_task(async_operation op) {
    co_return co_await std::move(op);
  }

  static void emit(task_base*, void* self) noexcept {
    static_cast<async_operation*>(self)->signal_.emit(boost::asio::cancellation_type::terminal);
  }
  static constexpr await_kind kind{"asio operation", &emit};

  Initiation init_;
  std::tuple<Args...> args_;
  task_base* t_ = nullptr;
  boost::asio::cancellation_signal signal_;
  std::optional<typename traits::values> values_;
  boost::system::error_code ec_;
  std::exception_ptr ex_;
};

}  // namespace detail
}  // namespace baton

template <class R, class... Ts>
struct boost::asio::async_result<baton::use_task_t, R(Ts...)> {
  /// What a function that names it returns (Beast's operations, redirect_error, as_single):
  /// initiate()'s operation converts to it. Functions that deduce their return type (Asio's
  /// own) get the operation itself, without the extra frame.
  using return_type = baton::task<typename baton::detail::completion<void(Ts...)>::result>;

  template <class Initiation, class... Args>
  static auto initiate(Initiation&& init, baton::use_task_t, Args&&... args) {
    return baton::detail::async_operation<void(Ts...), std::decay_t<Initiation>,
                                          std::decay_t<Args>...>(std::forward<Initiation>(init),
                                                                 std::forward<Args>(args)...);
  }
};
