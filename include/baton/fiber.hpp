// SPDX-License-Identifier: BSL-1.0
// Stackful tasks: spawn_fiber(f) and a blocking-style await(x) inside them (Boost.Context).
#pragma once

// Contract:
//   spawn_fiber(f, opts) runs f() on its own stack as a task of the running loop and returns a
//   task_handle for its result; it behaves like spawn(): a copy of the current context (without
//   inherit::never vars),
//   cancellable, awaitable, kept alive by the loop, failures reported when nobody looks.
//   await(x) inside a fiber suspends only that fiber until x is done and returns its result
//   (x: a task<T>, a task_handle<T>, sleep(d), an Asio operation with use_task, any baton
//   awaitable). Outside a fiber it throws runtime_error.
//   Context:      the fiber sees its task's context, exactly as a coroutine task does, after
//                 every await, on whatever loop thread it resumes; await(task) shares it.
//   Exceptions:   await rethrows x's exception; f's exception fails the task.
//   Cancellation: cancel() reaches the fiber at its current or next await(), as cancelled_error
//                 (which it may catch to clean up).
//   Stack:        opts.stack_size bytes (default 256 KiB) with a guard page below it
//                 (protected_fixedsize_stack): an overflow faults instead of corrupting memory.
//                 A finished fiber's stack is kept for the next fiber of the same size (at most
//                 64 per size), so it stays mapped; no fiber ever gets a stack of another size.
//   Thread-safety: as a task. Do not keep a `thread_local`'s address across await(): a fiber
//                 may resume on another loop thread (context vars are the way to carry state).
//
// Example:
//   auto h = baton::spawn_fiber([] {
//     baton::await(baton::sleep(10ms));               // only this fiber waits
//     return baton::await(fetch_user(id)).name;
//   });

#include <baton/detail/awaitable_traits.hpp>
#include <baton/errors.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace baton {

struct fiber_options {
  std::size_t stack_size = 256 * 1024;
  std::string name = {};
};

namespace detail {

/// A Boost.Context fiber driven by a task: the fiber hands the task what to await.
class fiber_core {
 public:
  fiber_core(std::size_t stack_size, std::function<void()> body);
  ~fiber_core();
  fiber_core(const fiber_core&) = delete;
  fiber_core& operator=(const fiber_core&) = delete;

  /// From the driving task: runs the fiber until it awaits something or ends.
  void resume();
  /// From inside the fiber: gives control back to the driving task.
  void suspend();
  bool finished() const noexcept { return finished_; }

  task<void> pending;                // what the fiber asked to await
  context_cell* task_ctx = nullptr;  // the driving task's context (current while it runs)
  std::exception_ptr error;          // how the fiber's function failed, if it did

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  bool finished_ = false;
};

/// The fiber running on this thread, or nullptr.
fiber_core* current_fiber() noexcept;

template <class R>
struct fiber_result {
  std::optional<std::conditional_t<std::is_void_v<R>, std::monostate, R>> value;
};

template <class R>
task<R> drive_fiber(std::shared_ptr<fiber_core> core, std::shared_ptr<fiber_result<R>> out) {
  core->resume();
  while (!core->finished()) {
    co_await std::move(core->pending);  // awaited by this task: same context, cancellable
    core->resume();
  }
  if (core->error) std::rethrow_exception(core->error);
  if constexpr (!std::is_void_v<R>) co_return std::move(*out->value);
}

}  // namespace detail

template <class F>
[[nodiscard]] auto spawn_fiber(F f, fiber_options opts) {
  using R = std::invoke_result_t<F&>;
  auto out = std::make_shared<detail::fiber_result<R>>();
  // Exceptions from fn are caught on the fiber (fiber.cpp) and rethrown by the driving task.
  auto core =
      std::make_shared<detail::fiber_core>(opts.stack_size, [out, fn = std::move(f)]() mutable {
        if constexpr (std::is_void_v<R>) {
          fn();
          out->value.emplace();
        } else {
          out->value.emplace(fn());
        }
      });
  return spawn(detail::drive_fiber<R>(std::move(core), std::move(out)),
               task_options{std::move(opts.name)});
}

/// With default options. A separate overload rather than a default argument: g++ 12 mishandles
/// a defaulted argument holding a std::string inside a co_await expression
/// (docs/notes/004-gcc12-coroutine-temporaries.md).
template <class F>
[[nodiscard]] auto spawn_fiber(F f) {
  return spawn_fiber(std::move(f), fiber_options{});
}

/// Inside a fiber: waits for a (suspending only this fiber) and returns its result.
template <class Awaitable>
decltype(auto) await(Awaitable&& a) {
  using R = detail::await_result_t<Awaitable>;
  detail::fiber_core* core = detail::current_fiber();
  if (core == nullptr) {
    throw baton::runtime_error("baton: await() outside a fiber (use co_await in a task)");
  }
  if (detail::current_cell != core->task_ctx) {
    throw context_error(
        "baton: await() inside context::run(): the fiber would suspend with that context "
        "entered; leave the run() first");
  }
  std::optional<std::conditional_t<std::is_void_v<R>, std::monostate, std::decay_t<R>>> value;
  std::exception_ptr error;
  // The awaiting coroutine lives on this fiber's stack frame, which stays put while suspended.
  auto body = [&]() -> task<void> {
    try {
      if constexpr (std::is_void_v<R>) {
        co_await std::forward<Awaitable>(a);
        value.emplace();
      } else {
        value.emplace(co_await std::forward<Awaitable>(a));
      }
    } catch (...) {
      error = std::current_exception();
    }
  };
  core->pending = body();
  core->suspend();
  if (error) std::rethrow_exception(error);
  if constexpr (!std::is_void_v<R>) return std::decay_t<R>(std::move(*value));
}

}  // namespace baton
