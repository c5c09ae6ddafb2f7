// SPDX-License-Identifier: BSL-1.0
// What the sync tests (event, lock, semaphore, condition, queue) share: the context variable
// and the waiter of their context tests, spawning waiters, joining tasks some of which were
// cancelled, a task cancelled before it waits, and checking values that arrive from threads.
#pragma once

#include <support/settle.hpp>

#include <baton/context_var.hpp>
#include <baton/errors.hpp>
#include <baton/run.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// The callables below (`make`, `wait`, `wake`) are plain lambdas that return a task or an
// awaitable; they are taken by value, so a coroutine keeps its own copy in its frame. None of
// them is a coroutine lambda, whose captures would dangle once its closure is gone.
namespace baton_test {

/// The context variable whose value a waiter must find unchanged after its wait.
inline baton::context_var<std::string> user("user");

/// A waiter for the context tests: sets `user` to `name`, awaits wait() and returns what
/// `user` holds afterwards ("none" if the wait lost it). wait()'s result is dropped (a lock
/// guard releases at once).
template <class Wait>
baton::task<std::string> user_after(const char* name, Wait wait) {
  (void)user.set(name);
  (void)co_await wait();
  co_return user.get("none");
}

/// What `user` held in the waiter after its wait, and in the waking task at the end.
struct users_seen {
  std::string waiter;
  std::string waker;
};

/// The context test of a primitive: a task sets `user` to "waiter" and awaits wait(); once it
/// waits, this task sets `user` to `waker` and calls wake() (awaiting what it returns, if
/// anything), then awaits the waiter.
template <class Wait, class Wake>
baton::task<users_seen> users_across_wait(Wait wait, const char* waker, Wake wake) {
  auto h = baton::spawn(user_after("waiter", std::move(wait)));
  co_await settle();
  (void)user.set(waker);
  if constexpr (std::is_void_v<std::invoke_result_t<Wake&>>) {
    wake();
  } else {
    co_await wake();
  }
  users_seen seen;
  seen.waiter = co_await h;
  seen.waker = user.get();
  co_return seen;
}

/// Spawns make(id) for each id, in order, and returns the handles:
/// auto [a, b] = spawn_each({1, 2}, [&](int id) { return take_and_record(l, order, id); });
template <std::size_t N, class Make>
auto spawn_each(const int (&ids)[N], Make make) {
  std::array<decltype(baton::spawn(make(0))), N> hs;
  for (std::size_t i = 0; i < N; ++i) hs[i] = baton::spawn(make(ids[i]));
  return hs;
}

/// Spawns make(0), make(1), ..., make(n - 1), in order, and returns the handles.
template <class Make>
auto spawn_n(int n, Make make) {
  std::vector<decltype(baton::spawn(make(0)))> hs;
  for (int id = 0; id < n; ++id) hs.push_back(baton::spawn(make(id)));
  return hs;
}

/// How the tasks joined by join_all ended.
struct joined {
  int finished = 0;
  int cancelled = 0;
};

/// Awaits every handle in turn, counting the tasks that returned and those that were cancelled
/// (cancelled_error); any other failure propagates.
inline baton::task<joined> join_all(std::vector<baton::task_handle<>>& hs) {
  joined j;
  for (auto& h : hs) {
    try {
      co_await h;
      ++j.finished;
    } catch (const baton::cancelled_error&) {
      ++j.cancelled;
    }
  }
  co_return j;
}

/// Cancels hs[first], hs[first + 2], ...: half of the tasks (which half, first = 0 or 1).
inline void cancel_every_other(std::vector<baton::task_handle<>>& hs, std::size_t first) {
  for (std::size_t i = first; i < hs.size(); i += 2) hs[i].cancel();
}

/// A task that cancels itself through `self` (once the spawner has stored its handle there),
/// then awaits wait(): the cancellation is pending before the wait begins.
template <class Wait>
baton::task<> cancel_self_then(std::shared_ptr<baton::task_handle<>> self, Wait wait) {
  co_await baton::sleep(std::chrono::milliseconds(0));  // let the spawner store the handle
  self->cancel();  // pending: delivered where the task next waits
  (void)co_await wait();
}

/// Spawns cancel_self_then(wait): a task already cancelled when it starts to wait, which must
/// end with cancelled_error instead of waiting.
template <class Wait>
baton::task_handle<> spawn_cancelled_before(Wait wait) {
  auto self = std::make_shared<baton::task_handle<>>();
  auto h = baton::spawn(cancel_self_then(self, std::move(wait)));
  *self = h;
  return h;
}

/// Options for a loop of four threads, where the tests hunt for races.
inline baton::run_options four_threads() {
  baton::run_options opts;
  opts.threads = 4;
  return opts;
}

/// Values added by tasks on several loop threads at once.
class collector {
 public:
  void add(int v) {
    std::lock_guard lk(mutex_);
    values_.push_back(v);
  }
  /// The values added so far, in the order they were added; call it once the adders are done.
  std::vector<int> take() {
    std::lock_guard lk(mutex_);
    return std::move(values_);
  }

 private:
  std::mutex mutex_;
  std::vector<int> values_;
};

/// v in ascending order.
inline std::vector<int> sorted(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  return v;
}

/// 0, 1, ..., n - 1: what sorted() of values that each arrived exactly once must equal.
inline std::vector<int> numbers_below(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
  return v;
}

}  // namespace baton_test
