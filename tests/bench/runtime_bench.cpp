// SPDX-License-Identifier: BSL-1.0
// What tasks and the loop cost: spawn + join, spawn in a populated context, nested co_await,
// yield + resume, and spawn + join on two loop threads, each beside a baseline measured in the
// same run (raw Asio coroutines on one io_context); spawn + join and yield in debug mode.
// docs/benchmarks.md reads it.
//
// Every loop-based benchmark runs its whole timing loop inside one coroutine: the baton rows
// inside one baton::run(), the Asio rows inside one co_spawn'd awaitable on one io_context. So
// loop set-up and shutdown are outside the timed region, and one benchmark iteration is one
// operation (one spawn + join, one nested co_await, one yield). Time is wall-clock
// (UseRealTime): on a threaded loop the timing coroutine moves between threads, so a thread's
// CPU clock means nothing; the threaded rows report the process's CPU time instead.
#include <baton/context_var.hpp>
#include <baton/executor.hpp>
#include <baton/run.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>
#include <baton/use_task.hpp>

#include <benchmark/benchmark.h>

#include "sixteen_vars.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace baton_bench {
namespace {

namespace asio = boost::asio;

// ---- helpers --------------------------------------------------------------------------------

/// Runs body on a baton loop with the given number of loop threads.
void run_baton(baton::task<> body, std::int64_t threads = 1) {
  baton::run_options opts;
  opts.threads = static_cast<unsigned>(threads);
  baton::run(std::move(body), std::move(opts));
}

/// Runs body on one io_context driven by `threads` threads (this one included), the way an Asio
/// program does it. The concurrency hint is 1 for one thread, as baton's own loop uses.
void run_asio(asio::awaitable<void> (*body)(benchmark::State&), benchmark::State& state,
              std::int64_t threads = 1) {
  asio::io_context ioc(static_cast<int>(threads));
  asio::co_spawn(ioc, body(state), asio::detached);
  std::vector<std::thread> extra;
  for (std::int64_t i = 1; i < threads; ++i) extra.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : extra) t.join();
}

baton::task<> empty_task() { co_return; }
asio::awaitable<void> empty_awaitable() { co_return; }

// ---- 1. spawn + join of an empty task -------------------------------------------------------

baton::task<> spawn_join_loop(benchmark::State& state) {
  for (auto _ : state) {
    auto h = baton::spawn(empty_task());
    co_await h;
  }
}

asio::awaitable<void> asio_spawn_join_loop(benchmark::State& state) {
  auto ex = co_await asio::this_coro::executor;
  for (auto _ : state) co_await asio::co_spawn(ex, empty_awaitable(), asio::use_awaitable);
}

/// Baseline: co_spawn(ex, empty_awaitable(), use_awaitable) awaited from an awaitable.
void baseline_asio_spawn_join(benchmark::State& state) {
  run_asio(&asio_spawn_join_loop, state, state.range(0));
}

/// baton::spawn(empty_task()) + co_await of its handle, from a task.
void spawn_join(benchmark::State& state) { run_baton(spawn_join_loop(state), state.range(0)); }

// 6. is the same pair with two loop threads: the spawner and the child may then run on
// different threads, and every hand-over between them can be a cross-thread wake-up.
BENCHMARK(baseline_asio_spawn_join)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->MeasureProcessCPUTime();
BENCHMARK(spawn_join)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->MeasureProcessCPUTime();

baton::task<> spawn_join_named_loop(benchmark::State& state) {
  for (auto _ : state) {
    auto h = baton::spawn(empty_task(), {.name = "a request handler"});
    co_await h;
  }
}

/// The same pair with a name (task_options::name), which the state then carries: a shared
/// string made per spawn. Against spawn_join, what a name costs.
void spawn_join_named(benchmark::State& state) {
  run_baton(spawn_join_named_loop(state), state.range(0));
}
BENCHMARK(spawn_join_named)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

/// Throughput shape (no Asio counterpart: use_awaitable's co_spawn starts only when awaited):
/// spawn `batch` tasks, then join them all; one iteration is one task.
baton::task<> spawn_batch_loop(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(1));
  std::vector<baton::task_handle<>> handles;
  handles.reserve(batch);
  for (auto _ : state) {
    handles.push_back(baton::spawn(empty_task()));
    if (handles.size() == batch) {
      for (auto& h : handles) co_await h;
      handles.clear();
    }
  }
  for (auto& h : handles) co_await h;
}

void spawn_batch_join(benchmark::State& state) {
  run_baton(spawn_batch_loop(state), state.range(0));
}
BENCHMARK(spawn_batch_join)
    ->ArgNames({"threads", "batch"})
    ->Args({1, 64})
    ->Args({2, 64})
    ->UseRealTime()
    ->MeasureProcessCPUTime();

// ---- 2. spawn in a populated context --------------------------------------------------------

/// spawn + join from a task whose own context holds range(0) vars: 0, or 16 (12 ints and 4
/// boxed strings). Every spawn copies that context (O(1): the copy shares the map).
baton::task<> spawn_join_in_context(benchmark::State& state) {
  sixteen_vars vars;
  if (state.range(0) == 16) vars.set_all();
  co_await spawn_join_loop(state);
  // The children really ran in the populated map: check once, outside the timing.
  auto check = baton::spawn(
      [](sixteen_vars& v) -> baton::task<int> { co_return v.ints.back()->get(-1); }(vars));
  const int seen = co_await check;
  if (seen != (state.range(0) == 16 ? 11 : -1)) {
    state.SkipWithError("the child did not see the spawner's context");
  }
}

/// The pair to compare: vars:0 is the same-run baseline of vars:16, on as many loop threads.
void spawn_join_context(benchmark::State& state) {
  run_baton(spawn_join_in_context(state), state.range(1));
}
BENCHMARK(spawn_join_context)
    ->ArgNames({"vars", "threads"})
    ->Args({0, 1})
    ->Args({16, 1})
    ->Args({0, 2})
    ->Args({16, 2})
    ->UseRealTime()
    ->MeasureProcessCPUTime();

/// The same with 16 vars of mixed flows (6 always, 5 tasks, 5 never): each spawn drops the
/// never-vars, so the child's map is the spawner's without root slot 31, built once and kept
/// on the spawner's root. Compare with vars:0 above, on as many threads.
baton::task<> spawn_join_in_mixed_context(benchmark::State& state) {
  sixteen_vars vars(true);
  vars.set_all();
  co_await spawn_join_loop(state);
  auto check = baton::spawn([](sixteen_vars& v) -> baton::task<int> {
    co_return v.ints[1]->get(-1) * 100 + v.ints[2]->get(-1);  // a tasks-var and a never-var
  }(vars));
  if (co_await check != 100 - 1) state.SkipWithError("the child saw the wrong flows");
}
void spawn_join_context_mixed_flows(benchmark::State& state) {
  run_baton(spawn_join_in_mixed_context(state), state.range(0));
}
BENCHMARK(spawn_join_context_mixed_flows)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

// ---- 3. nested co_await of a task<int> ------------------------------------------------------

baton::task<int> next_int(int x) { co_return x + 1; }
asio::awaitable<int> next_int_awaitable(int x) { co_return x + 1; }

baton::task<> nested_loop(benchmark::State& state) {
  int x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x);  // an opaque argument: the call is not folded away
    x = co_await next_int(x);
    benchmark::DoNotOptimize(x);
  }
}

asio::awaitable<void> asio_nested_loop(benchmark::State& state) {
  int x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x);
    x = co_await next_int_awaitable(x);
    benchmark::DoNotOptimize(x);
  }
}

/// Baseline: co_await of an awaitable<int> that returns at once, from an awaitable.
void baseline_asio_nested_await(benchmark::State& state) { run_asio(&asio_nested_loop, state); }
BENCHMARK(baseline_asio_nested_await)->UseRealTime();

/// co_await of a task<int> that returns at once, from a task.
void nested_await(benchmark::State& state) { run_baton(nested_loop(state)); }
BENCHMARK(nested_await)->UseRealTime();

/// The floor of any coroutine task type on this compiler: a minimal lazy task (symmetric
/// transfer in and out, result kept in the promise, frames from an inline free list), with
/// nothing else: no exceptions (they terminate), no owner, no cancellation. What baton adds
/// over it is what baton's nested_await costs above this row.
namespace floor {

/// Frames of one size, recycled through a plain free list (the benchmark uses one size).
struct frame_pool {
  struct block {
    block* next;
  };
  block* head = nullptr;
  std::size_t size = 0;

  void* take(std::size_t n) {
    if (head == nullptr || n != size) return ::operator new(n);
    return std::exchange(head, head->next);
  }
  void put(void* p, std::size_t n) noexcept {
    if (size == 0) size = n;
    if (n != size) return ::operator delete(p);
    head = new (p) block{head};
  }
  ~frame_pool() {
    while (head != nullptr) ::operator delete(std::exchange(head, head->next));
  }
};
thread_local frame_pool pool;

template <class T>
class [[nodiscard]] task {
 public:
  struct promise_type {
    std::coroutine_handle<> continuation;
    T value{};

    static void* operator new(std::size_t n) { return pool.take(n); }
    static void operator delete(void* p, std::size_t n) noexcept { pool.put(p, n); }

    task get_return_object() noexcept {
      return task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct final_awaiter {
      bool await_ready() const noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        if (h.promise().continuation) return h.promise().continuation;
        return std::noop_coroutine();  // the started root: back to start()
      }
      void await_resume() const noexcept {}
    };
    final_awaiter final_suspend() noexcept { return {}; }
    void return_value(T v) noexcept { value = v; }
    [[noreturn]] void unhandled_exception() noexcept { std::terminate(); }
  };

  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  task& operator=(task&&) = delete;
  ~task() {
    if (h_) h_.destroy();
  }

  struct awaiter {
    std::coroutine_handle<promise_type> h;
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) noexcept {
      h.promise().continuation = parent;
      return h;
    }
    T await_resume() noexcept { return h.promise().value; }
  };
  awaiter operator co_await() && noexcept { return {h_}; }

  /// Runs the task on this thread until its first real suspension (none here: to the end).
  void start() { h_.resume(); }

 private:
  std::coroutine_handle<promise_type> h_;
};

task<int> next_int(int x) { co_return x + 1; }

task<int> nested_loop(benchmark::State& state) {
  int x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x);
    x = co_await next_int(x);
    benchmark::DoNotOptimize(x);
  }
  co_return x;
}

}  // namespace floor

/// Floor: the same co_await with the minimal task type above (not a runtime: no loop at all).
void floor_minimal_task_nested_await(benchmark::State& state) {
  auto t = floor::nested_loop(state);
  t.start();
}
BENCHMARK(floor_minimal_task_nested_await)->UseRealTime();

// ---- 4. yield + resume ----------------------------------------------------------------------

baton::task<> yield_loop(benchmark::State& state) {
  for (auto _ : state) co_await baton::sleep(std::chrono::milliseconds(0));
}

asio::awaitable<void> asio_yield_loop(benchmark::State& state) {
  auto ex = co_await asio::this_coro::executor;
  for (auto _ : state) co_await asio::post(ex, asio::use_awaitable);
}

baton::task<> post_use_task_loop(benchmark::State& state) {
  auto ex = baton::current_executor();
  for (auto _ : state) co_await asio::post(ex, baton::use_task);
}

/// Baseline: co_await asio::post(ex, use_awaitable) from an awaitable.
void baseline_asio_post_yield(benchmark::State& state) { run_asio(&asio_yield_loop, state); }
BENCHMARK(baseline_asio_post_yield)->UseRealTime();

/// co_await baton::sleep(0ms) from a task (asyncio.sleep(0)).
void yield_sleep_0(benchmark::State& state) { run_baton(yield_loop(state)); }
BENCHMARK(yield_sleep_0)->UseRealTime();

/// For reference: the same Asio post awaited from a task through baton::use_task.
void yield_post_use_task(benchmark::State& state) { run_baton(post_use_task_loop(state)); }
BENCHMARK(yield_post_use_task)->UseRealTime();

// ---- 5. debug mode on (docs/reference/debug.md) ---------------------------------------------
// The same loops as spawn_join/1 and yield_sleep_0 with run_options::debug = true: what timing
// every step costs. Compare with those rows of the same run.

void run_baton_debug(baton::task<> body) {
  baton::run_options opts;
  opts.debug = true;
  baton::run(std::move(body), std::move(opts));
}

void spawn_join_debug_mode(benchmark::State& state) { run_baton_debug(spawn_join_loop(state)); }
BENCHMARK(spawn_join_debug_mode)->UseRealTime();

void yield_sleep_0_debug_mode(benchmark::State& state) { run_baton_debug(yield_loop(state)); }
BENCHMARK(yield_sleep_0_debug_mode)->UseRealTime();

// ---- 6. mirrors (registered last: a mirror, once installed, stays for the process) ----------

/// Tasks taking turns (sleep(0)), each with its own value of one int var. On one thread
/// (threads:1) `tasks` of them take turns until the timing loop ends: one iteration is one turn
/// of each, `tasks` resumes. On two threads (threads:2) four tasks are spawned and joined per
/// iteration, taking 64 turns each (256 resumes), and move between the threads, so a thread's
/// next task has a value or a root that thread did not see last.
/// mirror:0 runs before any mirror exists (the baseline); mirror:1 installs a mirror on the
/// var, and the values differ, so every resume calls it; mirror:2 gives every task the same
/// value (each from a set of its own: as many roots as tasks), so a resume calls nothing (on
/// two threads the spawner holds that value too, so that a task's first and last switch report
/// nothing either: every resume the row counts is one where the value does not change);
/// mirror:4 sets nothing in the tasks, so all run on the map they inherited (one root). Up to
/// here one mirror is installed (the "one mirrored var"). mirror:3, run last, adds a
/// second mirror on a std::string var and is mirror:1 with it (a boxed value: the mirror state
/// holds a reference to the value it last reported); each of its resumes looks up both vars.
baton::context_var<int> mirrored_int("mirrored_int");
baton::context_var<std::string> mirrored_string("mirrored_string");
thread_local int last_int = 0;
thread_local const std::string* last_string = nullptr;

/// Sets this task's value, then yields until the timing loop ends (partners until `done`).
baton::task<> take_turns(benchmark::State& state, int value, bool& done, bool timing) {
  if (state.range(0) == 4) {
    // nothing: every task keeps the spawner's map, whose int is 1
  } else if (state.range(0) == 3) {
    (void)mirrored_string.set(value == 1 ? "a value longer than the small-string buffer"
                                         : "another value longer than the small-string buffer");
  } else {
    (void)mirrored_int.set(state.range(0) == 2 ? 1 : value);
  }
  if (timing) {
    for (auto _ : state) co_await baton::sleep(std::chrono::milliseconds(0));
    done = true;
  } else {
    while (!done) co_await baton::sleep(std::chrono::milliseconds(0));
  }
}

void install_mirrors(std::int64_t mirror) {
  static bool int_mirror = false, string_mirror = false;
  if (mirror != 0 && !int_mirror) {
    mirrored_int.on_switch([](const int* v) { last_int = v != nullptr ? *v : 0; });
    int_mirror = true;
  }
  if (mirror == 3 && !string_mirror) {
    mirrored_string.on_switch([](const std::string* v) { last_string = v; });
    string_mirror = true;
  }
}

baton::task<> turns_on_one_thread(benchmark::State& state) {
  install_mirrors(state.range(0));
  if (state.range(0) == 4) (void)mirrored_int.set(1);
  bool done = false;
  std::vector<baton::task_handle<>> partners;
  for (int v = 2; v <= state.range(1); ++v)
    partners.push_back(baton::spawn(take_turns(state, v, done, false)));
  co_await take_turns(state, 1, done, true);
  for (auto& p : partners) co_await p;
  benchmark::DoNotOptimize(last_int);
  benchmark::DoNotOptimize(last_string);
}

constexpr int turns_per_task = 64;

baton::task<> own_value_turns(int value) {
  (void)mirrored_int.set(value);
  for (int i = 0; i < turns_per_task; ++i) co_await baton::sleep(std::chrono::milliseconds(0));
}

baton::task<> turns_on_threads(benchmark::State& state) {
  install_mirrors(state.range(0));
  const bool equal = state.range(0) == 2;
  if (equal) (void)mirrored_int.set(1);  // see above: no switch to or from the spawner reports
  for (auto _ : state) {
    baton::task_handle<> h[4] = {
        baton::spawn(own_value_turns(1)), baton::spawn(own_value_turns(equal ? 1 : 2)),
        baton::spawn(own_value_turns(equal ? 1 : 3)), baton::spawn(own_value_turns(equal ? 1 : 4))};
    for (auto& t : h) co_await t;
  }
  benchmark::DoNotOptimize(last_int);
}

void resume_with_mirror(benchmark::State& state) {
  if (state.range(2) == 1) {
    run_baton(turns_on_one_thread(state));
  } else {
    run_baton(turns_on_threads(state), state.range(2));
  }
}
// One family, so that every mirror:0 row runs before the first mirror is installed.
BENCHMARK(resume_with_mirror)
    ->ArgNames({"mirror", "tasks", "threads"})
    ->Args({0, 2, 1})
    ->Args({0, 4, 1})
    ->Args({0, 4, 2})
    ->Args({1, 2, 1})
    ->Args({1, 4, 1})
    ->Args({1, 4, 2})
    ->Args({2, 2, 1})
    ->Args({2, 4, 1})
    ->Args({2, 4, 2})
    ->Args({4, 2, 1})
    ->Args({3, 2, 1})
    ->UseRealTime()
    ->MeasureProcessCPUTime();

}  // namespace
}  // namespace baton_bench

BENCHMARK_MAIN();
