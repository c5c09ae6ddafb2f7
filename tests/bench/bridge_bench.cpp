// SPDX-License-Identifier: BSL-1.0
// What bridging to threads costs: to_thread against a hand-written post-to-pool-and-back on
// Asio, fibers against boost::asio::spawn, bind_context and context_executor against bare
// calls and posts. Every row has its baseline in the same binary and run; docs/benchmarks.md
// ("Bridging to threads") reads it.
//
// The loop-based rows run their whole timing loop inside one coroutine (one baton::run, or one
// co_spawn'd awaitable / spawn'd stackful coroutine on one io_context), so loop and pool set-up
// are outside the timed region. Both sides use a blocking pool of the same size: baton's
// default, min(32, cores + 4). Time is wall-clock (UseRealTime). Rows whose work crosses
// threads also report the CPU time of the whole process (MeasureProcessCPUTime), which a busy
// machine disturbs far less than wall-clock time; single-thread rows report the main thread's.
#include <baton/baton.hpp>

#include <benchmark/benchmark.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/context/fixedsize_stack.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace baton_bench {
namespace {

namespace asio = boost::asio;

constexpr int in_flight = 1000;

baton::context_var<std::string> user("user");

/// baton's default blocking pool size; the Asio baselines use a pool of the same size.
std::size_t pool_size() {
  return std::min<std::size_t>(32, std::thread::hardware_concurrency() + 4);
}

void run_baton(baton::task<> body) {
  baton::run_options opts;
  opts.blocking_threads = pool_size();
  baton::run(std::move(body), std::move(opts));
}

// ---- the hand-written Asio bridge -----------------------------------------------------------
//
// What an Asio program writes without baton: run f on the pool, then post the completion back
// to the awaiting coroutine's executor, keeping that executor's work count up meanwhile, and
// carrying f's exception. It does not carry any context.

template <class F, class Token>
auto post_to_pool_and_back(asio::thread_pool::executor_type pool, F f, Token&& token) {
  return asio::async_initiate<Token, void(std::exception_ptr)>(
      [pool](auto handler, F fn) {
        auto back = asio::prefer(asio::get_associated_executor(handler),
                                 asio::execution::outstanding_work.tracked);
        asio::post(pool, [handler = std::move(handler), fn = std::move(fn), back]() mutable {
          std::exception_ptr error;
          try {
            fn();
          } catch (...) {
            error = std::current_exception();
          }
          asio::post(
              back, [handler = std::move(handler), error]() mutable { std::move(handler)(error); });
        });
      },
      token, std::move(f));
}

// ---- 1. one round trip ----------------------------------------------------------------------

baton::task<> to_thread_loop(benchmark::State& state) {
  (void)user.set("ada");  // a context to carry, as a real request has
  for (auto _ : state) co_await baton::to_thread([] {});
}

void to_thread_round_trip(benchmark::State& state) { run_baton(to_thread_loop(state)); }

asio::awaitable<void> asio_bridge_loop(benchmark::State& state, asio::thread_pool& pool) {
  for (auto _ : state) {
    co_await post_to_pool_and_back(
        pool.get_executor(), [] {}, asio::use_awaitable);
  }
}

void baseline_asio_bridge_round_trip(benchmark::State& state) {
  asio::io_context ioc(1);
  asio::thread_pool pool(pool_size());
  asio::co_spawn(ioc, asio_bridge_loop(state, pool), asio::detached);
  ioc.run();
  pool.join();
}

// The two-line form: `co_await post(pool)` already comes back to the coroutine's executor
// (Asio's work_dispatcher re-dispatches the completion), so this is pool + io_context + one more
// io_context post, and nothing of the caller's runs on the pool.
asio::awaitable<void> asio_two_posts_loop(benchmark::State& state, asio::thread_pool& pool,
                                          asio::io_context& ioc) {
  for (auto _ : state) {
    co_await asio::post(pool, asio::use_awaitable);
    co_await asio::post(ioc, asio::use_awaitable);
  }
}

void baseline_asio_two_posts_round_trip(benchmark::State& state) {
  asio::io_context ioc(1);
  asio::thread_pool pool(pool_size());
  asio::co_spawn(ioc, asio_two_posts_loop(state, pool, ioc), asio::detached);
  ioc.run();
  pool.join();
}

BENCHMARK(baseline_asio_bridge_round_trip)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baseline_asio_two_posts_round_trip)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(to_thread_round_trip)->UseRealTime()->MeasureProcessCPUTime();

// ---- 2. 1000 calls in flight ----------------------------------------------------------------
//
// One iteration: spawn 1000 tasks, each doing one call (or nothing, for the spawn-only rows
// that show how much of the figure is the runtime's spawn + join), then join them all.

baton::task<> one_to_thread() {
  co_await baton::to_thread([] {});
}
baton::task<> nothing() { co_return; }

baton::task<> to_thread_fan_out_loop(benchmark::State& state, baton::task<> (*child)()) {
  (void)user.set("ada");
  std::vector<baton::task_handle<void>> hs;
  hs.reserve(in_flight);
  for (auto _ : state) {
    for (int i = 0; i < in_flight; ++i) hs.push_back(baton::spawn(child()));
    for (auto& h : hs) co_await h;
    hs.clear();
  }
  state.SetItemsProcessed(state.iterations() * in_flight);
}

void to_thread_1000_in_flight(benchmark::State& state) {
  run_baton(to_thread_fan_out_loop(state, one_to_thread));
}
void spawn_join_1000(benchmark::State& state) { run_baton(to_thread_fan_out_loop(state, nothing)); }

asio::awaitable<void> asio_child(asio::thread_pool* pool, int* left, asio::steady_timer* done) {
  if (pool != nullptr) {
    co_await post_to_pool_and_back(
        pool->get_executor(), [] {}, asio::use_awaitable);
  }
  if (--*left == 0) done->cancel();
}

asio::awaitable<void> asio_fan_out_loop(benchmark::State& state, asio::thread_pool* pool) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer done(ex);  // an event: cancelled by the last child
  for (auto _ : state) {
    int left = in_flight;
    done.expires_at(asio::steady_timer::time_point::max());
    for (int i = 0; i < in_flight; ++i) {
      asio::co_spawn(ex, asio_child(pool, &left, &done), asio::detached);
    }
    boost::system::error_code ec;
    if (left != 0) co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  state.SetItemsProcessed(state.iterations() * in_flight);
}

void run_asio_fan_out(benchmark::State& state, bool with_pool) {
  asio::io_context ioc(1);
  asio::thread_pool pool(pool_size());
  asio::co_spawn(ioc, asio_fan_out_loop(state, with_pool ? &pool : nullptr), asio::detached);
  ioc.run();
  pool.join();
}

void baseline_asio_bridge_1000_in_flight(benchmark::State& state) { run_asio_fan_out(state, true); }
void baseline_asio_co_spawn_join_1000(benchmark::State& state) { run_asio_fan_out(state, false); }

BENCHMARK(baseline_asio_bridge_1000_in_flight)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(to_thread_1000_in_flight)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baseline_asio_co_spawn_join_1000)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(spawn_join_1000)->UseRealTime()->MeasureProcessCPUTime();

// ---- 3. stackful: spawn + join of an empty fiber --------------------------------------------

// The handle is named on purpose: `co_await baton::spawn_fiber(f)` in one expression is
// miscompiled by g++ 12.2 (the defaulted fiber_options temporary, which holds a std::string,
// is destroyed from a bitwise copy in the coroutine frame: "free(): invalid pointer"). See
// docs/design/bridging.md.
baton::task<> fiber_loop(benchmark::State& state) {
  for (auto _ : state) {
    auto h = baton::spawn_fiber([] {});
    co_await h;
  }
}

void fiber_spawn_join(benchmark::State& state) { run_baton(fiber_loop(state)); }

/// Spawns an empty stackful child on ex and completes token when the child has finished.
/// (Asio 1.81's spawn cannot complete into a yield_context with the void(exception_ptr)
/// signature: its spawn_handler rethrows a null exception_ptr. This wrapper has signature
/// void() instead.)
///
/// The completion is posted, not called. Asio 1.81 calls spawn's completion handler on the
/// child's own stack (spawn_entry_point::call, through handler_work::complete, which runs it
/// inline on the io_context's thread), and a yield_context handler resumes its coroutine right
/// there. Called directly, the parent would therefore run its next iteration, and spawn the
/// next child, from inside the finished child's frames: every child's stack would stay
/// mapped, one nested inside the next, until the parent ends. With a guard-paged stack (two
/// mappings each) that reaches vm.max_map_count (65530) after ~32,700 children; mmap then
/// throws bad_alloc inside the previous child's spawn_entry_point, whose catch (...) calls this
/// completion a second time with its handler already moved from: a null spawned_thread_,
/// SIGSEGV. Posting lets the child return and release its stack before the parent resumes,
/// as baton's fiber join does.
template <class Executor, class StackAllocator, class Token>
auto spawn_and_join(const Executor& ex, StackAllocator stack, Token&& token) {
  return asio::async_initiate<Token, void()>(
      [ex, stack](auto handler) mutable {
        asio::spawn(
            ex, std::allocator_arg, std::move(stack), [](asio::yield_context) {},
            [h = std::move(handler)](std::exception_ptr) mutable { asio::post(std::move(h)); });
      },
      token);
}

/// The parent is stackful too; the child joins through the parent's yield_context.
/// stack_bytes == 0: Asio's default stack (boost::context::fixedsize_stack, malloc'd, no guard
/// page); otherwise protected_fixedsize_stack of that size, as baton's fibers use.
void run_asio_spawn(benchmark::State& state, std::size_t stack_bytes) {
  asio::io_context ioc(1);
  asio::spawn(
      ioc,
      [&state, stack_bytes](asio::yield_context yield) {
        auto ex = yield.get_executor();
        for (auto _ : state) {
          if (stack_bytes == 0) {
            spawn_and_join(ex, boost::context::fixedsize_stack(), yield);
          } else {
            spawn_and_join(ex, boost::context::protected_fixedsize_stack(stack_bytes), yield);
          }
        }
      },
      asio::detached);
  ioc.run();
}

void baseline_asio_spawn_join(benchmark::State& state) { run_asio_spawn(state, 0); }
void baseline_asio_spawn_join_guarded(benchmark::State& state) {
  run_asio_spawn(state, baton::fiber_options{}.stack_size);
}

// One iteration = a parent that spawns and joins 100 guarded children and ends: the row above
// plus the parent's own spawn and teardown, shared by its 100 children. (Each child's stack is
// released when it ends, inside the iteration, in both rows.)
void baseline_asio_spawn_join_guarded_released(benchmark::State& state) {
  constexpr int children = 100;
  asio::io_context ioc(1);
  for (auto _ : state) {
    asio::spawn(
        ioc,
        [](asio::yield_context yield) {
          auto ex = yield.get_executor();
          for (int i = 0; i < children; ++i) {
            spawn_and_join(
                ex, boost::context::protected_fixedsize_stack(baton::fiber_options{}.stack_size),
                yield);
          }
        },
        asio::detached);
    ioc.restart();
    ioc.run();
  }
  state.SetItemsProcessed(state.iterations() * children);
}

BENCHMARK(baseline_asio_spawn_join)->UseRealTime();
BENCHMARK(baseline_asio_spawn_join_guarded)->UseRealTime();
BENCHMARK(baseline_asio_spawn_join_guarded_released)->UseRealTime();
BENCHMARK(fiber_spawn_join)->UseRealTime();

// ---- 4. bind_context: a bound call against a bare call ---------------------------------------

int add_one(int x) { return x + 1; }

void baseline_bare_call(benchmark::State& state) {
  auto f = [](int x) { return add_one(x); };
  int v = 0;
  for (auto _ : state) {
    v = f(v);
    benchmark::DoNotOptimize(v);
  }
}

// What bind_context does by hand: a fresh copy of a snapshot, entered around the call.
void baseline_copy_run_call(benchmark::State& state) {
  baton::context().run([&] {
    (void)user.set("ada");
    const baton::context snapshot = baton::copy_context();
    auto f = [](int x) { return add_one(x); };
    int v = 0;
    for (auto _ : state) {
      v = snapshot.copy().run(f, v);
      benchmark::DoNotOptimize(v);
    }
  });
}

void bind_context_call(benchmark::State& state) {
  auto bound = baton::context().run([] {
    (void)user.set("ada");
    return baton::bind_context([](int x) { return add_one(x); });
  });
  int v = 0;
  for (auto _ : state) {
    v = bound(v);
    benchmark::DoNotOptimize(v);
  }
}

BENCHMARK(baseline_bare_call);
BENCHMARK(baseline_copy_run_call);
BENCHMARK(bind_context_call);

// ---- 5. context_executor: 1000 posts to a one-thread pool, then wait for all -----------------

template <class Executor>
void post_batch(benchmark::State& state, Executor ex) {
  std::atomic<int> ran{0};
  int expected = 0;
  baton::context().run([&] {
    (void)user.set("ada");
    for (auto _ : state) {
      for (int i = 0; i < in_flight; ++i) {
        // relaxed: only counted; the acquire load below orders nothing else.
        asio::post(ex, [&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
      }
      expected += in_flight;
      while (ran.load(std::memory_order_acquire) != expected) std::this_thread::yield();
    }
  });
  state.SetItemsProcessed(state.iterations() * in_flight);
}

void baseline_pool_post_1000(benchmark::State& state) {
  asio::thread_pool pool(1);
  post_batch(state, pool.get_executor());
  pool.join();
}

void context_executor_post_1000(benchmark::State& state) {
  asio::thread_pool pool(1);
  post_batch(state, baton::make_context_executor(pool.get_executor()));
  pool.join();
}

BENCHMARK(baseline_pool_post_1000)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(context_executor_post_1000)->UseRealTime()->MeasureProcessCPUTime();

}  // namespace
}  // namespace baton_bench

BENCHMARK_MAIN();
