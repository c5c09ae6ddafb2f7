// SPDX-License-Identifier: BSL-1.0
// loop_handle: hand work to a running loop from any thread; like run_coroutine_threadsafe.
#pragma once

// Contract:
//   this_loop()        a handle to the loop running on this thread (runtime_error outside).
//   h.submit(t)        from any thread: runs task t on the loop, in a copy of the SUBMITTING
//                      thread's context (without inherit::tasks and inherit::never vars: a
//                      thread hand-off), and returns a std::future for its result or exception
//                      (asyncio.run_coroutine_threadsafe).
//   h.call(f)          from any thread: runs f() on a loop thread (in a copy of the submitting
//                      thread's context) and returns a std::future for its result
//                      (loop.call_soon_threadsafe, with a result).
//   h.running()        whether the loop still accepts work.
//   After the loop's main task finished, submit/call throw runtime_error ("the loop has
//   finished"); work accepted just before that still runs, or its future gets runtime_error
//   if the loop ends before it could start. Never wait on such a future from a loop thread:
//   that blocks the loop.
//   Thread-safety: a loop_handle may be copied and used from any thread, also after the loop
//   ended.
//
// Example:
//   auto h = baton::this_loop();                         // inside the loop
//   std::thread([h] { h.submit(refresh_cache()).get(); }).detach();

#include <baton/context.hpp>
#include <baton/errors.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>

#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <type_traits>
#include <utility>

namespace baton {

namespace detail {

/// Outlives the loop: work is posted through it only while the loop accepts work.
struct loop_gate;

/// Posts job to the loop if it still accepts work (under the gate); false otherwise.
/// job(false) is called instead when the loop ends before running it.
bool post_to_loop(const std::shared_ptr<loop_gate>& gate, std::function<void(bool)> job);
std::shared_ptr<loop_gate> gate_of_running_loop();
bool gate_open(const loop_gate& gate) noexcept;

}  // namespace detail

class loop_handle {
 public:
  template <class T>
  std::future<T> submit(task<T> t) const {
    auto promise = std::make_shared<std::promise<T>>();
    std::future<T> f = promise->get_future();
    auto body = std::make_shared<task<T>>(std::move(t));
    auto job = [promise, body,
                ctx = detail::capture_context(detail::hand_off::thread)](bool runs) mutable {
      if (!runs) {
        promise->set_exception(std::make_exception_ptr(
            baton::runtime_error("baton: the loop finished before the submitted task started")));
        return;
      }
      (void)spawn(forward(std::move(*body), promise), std::move(ctx));
    };
    if (!detail::post_to_loop(gate_, std::move(job))) throw_finished();
    return f;
  }

  template <class F>
  std::future<std::invoke_result_t<F&>> call(F f) const {
    using R = std::invoke_result_t<F&>;
    auto promise = std::make_shared<std::promise<R>>();
    std::future<R> fut = promise->get_future();
    auto job = [promise, fn = std::move(f),
                ctx = detail::capture_context(detail::hand_off::thread)](bool runs) mutable {
      if (!runs) {
        promise->set_exception(std::make_exception_ptr(
            baton::runtime_error("baton: the loop finished before the call could run")));
        return;
      }
      try {
        if constexpr (std::is_void_v<R>) {
          ctx.run(fn);
          promise->set_value();
        } else {
          promise->set_value(ctx.run(fn));
        }
      } catch (...) {
        promise->set_exception(std::current_exception());
      }
    };
    if (!detail::post_to_loop(gate_, std::move(job))) throw_finished();
    return fut;
  }

  bool running() const noexcept { return detail::gate_open(*gate_); }

 private:
  friend struct detail::access;  // make_loop_handle(), for this_loop()
  explicit loop_handle(std::shared_ptr<detail::loop_gate> g) noexcept : gate_(std::move(g)) {}

  template <class T>
  static task<void> forward(task<T> t, std::shared_ptr<std::promise<T>> p) {
    try {
      if constexpr (std::is_void_v<T>) {
        co_await std::move(t);
        p->set_value();
      } else {
        p->set_value(co_await std::move(t));
      }
    } catch (...) {
      p->set_exception(std::current_exception());
    }
  }
  [[noreturn]] static void throw_finished() {
    throw baton::runtime_error("baton: the loop has finished; it accepts no more work");
  }

  std::shared_ptr<detail::loop_gate> gate_;
};

/// A handle to the loop running on this thread.
inline loop_handle this_loop() {
  return detail::access::make_loop_handle(detail::gate_of_running_loop());
}

}  // namespace baton
