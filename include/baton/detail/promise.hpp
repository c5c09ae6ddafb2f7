// SPDX-License-Identifier: BSL-1.0
// The machinery of task<T>: its promise types and the awaiter of co_await on a plain task.
#pragma once

#include <baton/detail/access.hpp>
#include <baton/detail/debug_hooks.hpp>
#include <baton/detail/task_base.hpp>

#include <coroutine>
#include <exception>
#include <memory>
#include <type_traits>
#include <typeinfo>
#include <utility>

namespace boost::asio {
template <typename T, typename Executor>
class awaitable;  // adopted by asio_awaitable.hpp (included by baton.hpp)
}  // namespace boost::asio

namespace baton {

template <class T = void>
class task;

namespace detail {

/// Refers to an awaiter that lives in the awaiting expression (see await_transform).
template <class Awaiter>
struct awaiter_ref {
  Awaiter* a;
  bool await_ready() { return a->await_ready(); }
  template <class H>
  auto await_suspend(H h) {
    return a->await_suspend(h);
  }
  decltype(auto) await_resume() { return a->await_resume(); }
};

/// The awaiter co_await takes from a: what its member or free operator co_await returns, else
/// what `itself(a)` makes of a (an awaitable without operator co_await is its own awaiter).
template <class A, class Itself>
decltype(auto) awaiter_of(A&& a, Itself itself) {
  if constexpr (requires { static_cast<A&&>(a).operator co_await(); }) {
    return static_cast<A&&>(a).operator co_await();
  } else if constexpr (requires { operator co_await(static_cast<A&&>(a)); }) {
    return operator co_await(static_cast<A&&>(a));
  } else {
    return itself(static_cast<A&&>(a));
  }
}

/// What a task's await_transform hands back: the awaiter, or a reference to an awaitable that
/// is its own awaiter (it lives in the awaiting expression).
template <class A>
auto pass_through(A&& a) {
  return awaiter_of(static_cast<A&&>(a),
                    [](auto&& self) { return awaiter_ref<std::remove_reference_t<A>>{&self}; });
}

struct promise_base {
  // The awaiting frame; empty for a root frame. A frame's task is not stored: it is the
  // running_task of the thread the frame runs on.
  std::coroutine_handle<> continuation;

  // Inlined into every frame's ramp and destroy, where n is a constant: the size class folds.
  [[gnu::always_inline]] static void* operator new(std::size_t n) { return allocate_frame(n); }
  [[gnu::always_inline]] static void operator delete(void* p, std::size_t n) noexcept {
    deallocate_frame(p, n);
  }

  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
      promise_base& p = h.promise();
      if (p.continuation) return p.continuation;
      return finish(running_task, h);
    }
    void await_resume() const noexcept {}
  };

  // A failing frame parks its exception in its task until the awaiting frame, which runs
  // next, takes it in await_resume: one slot per task is enough, because one frame of a task
  // runs at a time and a failed frame hands control straight back to its awaiter. A root's
  // failure stays there as the task's result. Frames thus carry no exception_ptr.
  void unhandled_exception() noexcept { running_task->error = std::current_exception(); }
  [[noreturn]] static void rethrow_parked() {
    std::rethrow_exception(std::exchange(running_task->error, {}));
  }

  // Lazy. A task cancelled before its first step never starts its body: the loop finishes it
  // as cancelled instead of resuming it (loop::resume), so nested frames pay no check here.
  std::suspend_always initial_suspend() noexcept { return {}; }
  final_awaiter final_suspend() noexcept { return {}; }

  /// Every co_await passes through unchanged, except an asio::awaitable, which is run on the
  /// loop inside this task's context (definition in asio_awaitable.hpp). The pass-through hands
  /// back a prvalue (the awaiter itself, or a reference wrapper): g++ 12 copies an awaiter
  /// that await_transform returns by reference.
  template <class A>
  auto await_transform(A&& a) noexcept(noexcept(pass_through(static_cast<A&&>(a)))) {
    return pass_through(static_cast<A&&>(a));
  }
  template <class T, class Executor>
  auto await_transform(boost::asio::awaitable<T, Executor>&& a);
};

template <class T>
struct promise final : promise_base {
  // The value, without std::variant: one byte says whether it is alive. A failure is parked
  // in the task instead (promise_base::unhandled_exception), which keeps frames 8 bytes smaller.
  bool has_value = false;
  union {
    T value;
  };

  promise() noexcept {}
  ~promise() {
    if (has_value) value.~T();
  }
  promise(const promise&) = delete;
  promise& operator=(const promise&) = delete;

  task<T> get_return_object() noexcept;
  template <class U = T>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) {
    std::construct_at(&value, std::forward<U>(v));
    has_value = true;
  }

  T take() {
    if (!has_value) [[unlikely]]
      rethrow_parked();
    return std::move(value);
  }
};

template <>
struct promise<void> final : promise_base {
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() {
    if (running_task->error) [[unlikely]]
      rethrow_parked();
  }
};

/// Every baton promise: what an awaiter needs to find its task.
template <class P>
concept baton_promise = std::is_base_of_v<promise_base, P>;

}  // namespace detail

namespace detail {
/// False for every T, but only once T is known: a static_assert in a template that must not
/// be instantiated.
template <class T>
inline constexpr bool dependent_false = false;

/// Throws runtime_error for co_await of an empty task (moved from, default-constructed, or
/// already awaited: an await takes the frame out of the task).
[[noreturn]] void throw_bad_await(const std::type_info& type);

/// co_await of a plain task: runs it inline in the awaiting task (same context, same task).
/// The awaiter owns the child frame, taken out of the task by operator co_await, and destroys
/// it at the end of the co_await expression. The task is left empty, so a second await of it
/// is the empty case, and ~task has nothing to check on this path.
template <class T>
struct task_awaiter {
  std::coroutine_handle<promise<T>> h;

  explicit task_awaiter(std::coroutine_handle<promise<T>> frame) noexcept : h(frame) {}
  task_awaiter(task_awaiter&& o) noexcept : h(std::exchange(o.h, {})) {}
  task_awaiter& operator=(task_awaiter&&) = delete;
  ~task_awaiter() {
    if (h) h.destroy();
  }

  bool await_ready() const {
    // Resuming nothing would crash: one test of the handle just taken, in a register.
    if (!h) [[unlikely]]
      throw_bad_await(typeid(T));
    return false;
  }
  template <baton_promise P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> parent) noexcept {
    h.promise().continuation = parent;  // the child runs in the same task: nothing else to pass
    return h;
  }
  T await_resume() { return h.promise().take(); }
};
}  // namespace detail

}  // namespace baton
