// SPDX-License-Identifier: BSL-1.0
// What one suspended task holds in memory: 100 000 tasks parked on an event, a sleep, in a
// populated context, beside Asio co_spawn'd awaitables parked on timers. docs/benchmarks.md
// reads it.
//
// This executable replaces glibc's malloc family (malloc, free, calloc, realloc, aligned_alloc,
// posix_memalign, memalign) with counting wrappers around glibc's own __libc_* entry points, so
// it is kept apart from runtime_bench, whose timings the counting would slow down. Counting
// malloc rather than operator new matters: Asio allocates its frames and operations with
// std::aligned_alloc, which never reaches operator new. Each benchmark runs once per repetition
// (Iterations(1)); the time column is only the time it took to park the tasks. Counters:
//   B/task       bytes live in malloc blocks (malloc_usable_size: what the allocator really
//                hands out for each request) after the tasks parked, minus before, per task,
//                counting the line blocks (task states, map nodes) the parking thread took
//                rather than the slabs they are carved from, which are malloc'd once and
//                reused from row to row (context_map.hpp, allocate_lines());
//   heap_B/task  the same from glibc's mallinfo2().uordblks: every byte malloc has in use,
//                chunk headers included;
//   allocs/task  malloc blocks live after minus before, per task.
// The label lists the requested sizes that every task allocated ("1x184" = one block of 184 B
// per task), i.e. what the B/task figure is made of.
#include <baton/context_var.hpp>
#include <baton/event.hpp>
#include <baton/run.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <benchmark/benchmark.h>

#include "sixteen_vars.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <malloc.h>

#include <cerrno>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

// ---- counting malloc --------------------------------------------------------------------------

extern "C" {
// glibc's own allocator, under the names it exports for exactly this purpose (wrapping malloc).
void* __libc_malloc(std::size_t n);
void* __libc_calloc(std::size_t count, std::size_t n);
void* __libc_realloc(void* p, std::size_t n);
void* __libc_memalign(std::size_t align, std::size_t n);
void __libc_free(void* p);
}

namespace {

// Relaxed everywhere: the counters are read by the thread that did the allocations (each
// benchmark's loop is that one thread), and no other data is published through them.
std::atomic<std::int64_t> live_bytes{0};
std::atomic<std::int64_t> live_blocks{0};

// Requested sizes of the blocks allocated while `recording` (gross: frees are not subtracted).
constexpr std::size_t max_tracked_size = 4096;
std::array<std::atomic<std::int64_t>, max_tracked_size + 1> sizes_requested{};
std::atomic<bool> recording{false};

void* counted(void* p, std::size_t n) noexcept {
  if (p == nullptr) return p;
  live_bytes.fetch_add(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  live_blocks.fetch_add(1, std::memory_order_relaxed);
  if (recording.load(std::memory_order_relaxed)) {
    sizes_requested[n < max_tracked_size ? n : max_tracked_size].fetch_add(
        1, std::memory_order_relaxed);
  }
  return p;
}

void uncounted(void* p) noexcept {
  if (p == nullptr) return;
  live_bytes.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  live_blocks.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace

extern "C" {
void* malloc(std::size_t n) { return counted(__libc_malloc(n), n); }
void* calloc(std::size_t count, std::size_t n) {
  return counted(__libc_calloc(count, n), count * n);
}
void* realloc(void* p, std::size_t n) {
  if (p == nullptr) return malloc(n);
  const std::size_t old = malloc_usable_size(p);
  void* q = __libc_realloc(p, n);
  if (q == nullptr) return nullptr;  // p is still live, still counted
  live_bytes.fetch_add(
      static_cast<std::int64_t>(malloc_usable_size(q)) - static_cast<std::int64_t>(old),
      std::memory_order_relaxed);
  return q;
}
void* aligned_alloc(std::size_t align, std::size_t n) {
  return counted(__libc_memalign(align, n), n);
}
void* memalign(std::size_t align, std::size_t n) { return counted(__libc_memalign(align, n), n); }
int posix_memalign(void** out, std::size_t align, std::size_t n) {
  void* p = counted(__libc_memalign(align, n), n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void free(void* p) {
  uncounted(p);
  __libc_free(p);
}
}

namespace baton_bench {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// ---- measuring ------------------------------------------------------------------------------

struct snapshot {
  std::int64_t bytes;
  std::int64_t blocks;
  std::int64_t heap;

  static snapshot now() noexcept {
    const std::int64_t lines =
        baton::detail::line_bytes_out_on_this_thread() - baton::detail::line_slab_bytes();
    return {live_bytes.load(std::memory_order_relaxed) + lines,
            live_blocks.load(std::memory_order_relaxed),
            static_cast<std::int64_t>(mallinfo2().uordblks) + lines};
  }
};

/// Starts counting the sizes requested from operator new.
void start_recording() noexcept {
  for (auto& c : sizes_requested) c.store(0, std::memory_order_relaxed);
  recording.store(true, std::memory_order_relaxed);
}

/// Sets the counters from two snapshots around parking n tasks, and the label from the sizes
/// that (nearly) every task requested.
void report(benchmark::State& state, const snapshot& before, const snapshot& after,
            std::int64_t n) {
  recording.store(false, std::memory_order_relaxed);
  const auto per_task = [n](std::int64_t v) { return static_cast<double>(v) / double(n); };
  state.counters["B/task"] = per_task(after.bytes - before.bytes);
  state.counters["heap_B/task"] = per_task(after.heap - before.heap);
  state.counters["allocs/task"] = per_task(after.blocks - before.blocks);
  std::string label;
  for (std::size_t size = 0; size <= max_tracked_size; ++size) {
    const std::int64_t count = sizes_requested[size].load(std::memory_order_relaxed);
    if (count * 10 < n * 9) continue;  // not a per-task block (a vector growing, a cache)
    if (!label.empty()) label += " + ";
    label += std::to_string((count + n / 2) / n) + "x" + std::to_string(size);
  }
  state.SetLabel("per task: " + label);
}

// ---- baton ----------------------------------------------------------------------------------

enum class park { event, event_16_vars, event_own_var, sleep, sleep_named_duration };

baton::task<> wait_for(baton::event& ev) { co_await ev.wait(); }

baton::task<> set_then_wait_for(baton::context_var<int>& var, baton::event& ev) {
  (void)var.set(1);  // the task's context now has its own map (one small node)
  co_await ev.wait();
}

baton::task<> sleep_an_hour() { co_await baton::sleep(1h); }

/// The same with the duration in a variable. g++ keeps the temporaries of a co_await's full
/// expression in the frame: the two rows show that sleep(1h), whose overload for other
/// duration types takes its argument by value, leaves none there (both 192 B).
constexpr std::chrono::steady_clock::duration an_hour = 1h;
baton::task<> sleep_for_an_hour() { co_await baton::sleep(an_hour); }

baton::task<> park_baton_tasks(benchmark::State& state, park how) {
  const std::int64_t n = state.range(0);
  baton::event ev;
  baton::context_var<int> own("own");
  sixteen_vars vars;
  if (how == park::event_16_vars) vars.set_all();
  std::vector<baton::task_handle<>> handles;
  handles.reserve(static_cast<std::size_t>(n));
  co_await baton::sleep(0ms);  // let the loop settle before the first snapshot
  for (auto _ : state) {
    start_recording();
    const snapshot before = snapshot::now();
    for (std::int64_t i = 0; i < n; ++i) {
      switch (how) {
        case park::event:
        case park::event_16_vars:
          handles.push_back(baton::spawn(wait_for(ev)));
          break;
        case park::event_own_var:
          handles.push_back(baton::spawn(set_then_wait_for(own, ev)));
          break;
        case park::sleep:
          handles.push_back(baton::spawn(sleep_an_hour()));
          break;
        case park::sleep_named_duration:
          handles.push_back(baton::spawn(sleep_for_an_hour()));
          break;
      }
    }
    co_await baton::sleep(0ms);  // the children all run (FIFO) up to their suspension point
    const snapshot after = snapshot::now();
    report(state, before, after, n);
    if (handles.front().done() || handles.back().done()) {
      state.SkipWithError("a task finished instead of parking");
    }
  }
  ev.set();
  for (auto& h : handles) {
    if (how == park::sleep || how == park::sleep_named_duration) h.cancel();
    try {
      co_await h;
    } catch (const baton::cancelled_error&) {
    }
  }
}

/// Tasks parked on one shared baton::event (each task: its state + one frame).
void baton_event(benchmark::State& state) { baton::run(park_baton_tasks(state, park::event)); }

/// The same, spawned from a task whose context holds 16 vars (each task shares that map).
void baton_event_context_16_vars(benchmark::State& state) {
  baton::run(park_baton_tasks(state, park::event_16_vars));
}

/// The same, each task having set one var of its own first (its own map node).
void baton_event_own_var(benchmark::State& state) {
  baton::run(park_baton_tasks(state, park::event_own_var));
}

/// Tasks parked in baton::sleep(1h): linked into the loop's timer wheel through their own
/// fields; the awaiter is the 8-byte deadline.
void baton_sleep(benchmark::State& state) { baton::run(park_baton_tasks(state, park::sleep)); }

/// The same, the duration given as a named constant (no temporary kept in the frame).
void baton_sleep_named_duration(benchmark::State& state) {
  baton::run(park_baton_tasks(state, park::sleep_named_duration));
}

// ---- Asio baselines -------------------------------------------------------------------------

asio::awaitable<void> wait_for_timer(asio::steady_timer& t) {
  co_await t.async_wait(asio::use_awaitable);
}

asio::awaitable<void> wait_for_own_timer() {
  asio::steady_timer t(co_await asio::this_coro::executor, 1h);
  co_await t.async_wait(asio::use_awaitable);
}

void park_asio_awaitables(benchmark::State& state, bool own_timer) {
  const std::int64_t n = state.range(0);
  for (auto _ : state) {
    asio::io_context ioc(1);
    asio::steady_timer shared(ioc, asio::steady_timer::time_point::max());
    start_recording();
    const snapshot before = snapshot::now();
    for (std::int64_t i = 0; i < n; ++i) {
      if (own_timer) {
        asio::co_spawn(ioc, wait_for_own_timer(), asio::detached);
      } else {
        asio::co_spawn(ioc, wait_for_timer(shared), asio::detached);
      }
    }
    ioc.poll();  // every awaitable runs up to its async_wait
    const snapshot after = snapshot::now();
    report(state, before, after, n);
    if (ioc.stopped()) state.SkipWithError("an awaitable finished instead of parking");
    // Leaving the scope cancels the shared timer and destroys the io_context, which destroys
    // every parked awaitable without resuming it.
  }
}

/// Baseline: co_spawn(ioc, awaitable, detached) parked on one shared steady_timer (Asio's
/// stand-in for an event: every async_wait is queued on the timer).
void baseline_asio_shared_timer(benchmark::State& state) { park_asio_awaitables(state, false); }

/// Baseline: co_spawn(ioc, awaitable, detached) parked on a steady_timer of its own (in its
/// frame), like baton::sleep.
void baseline_asio_own_timer(benchmark::State& state) { park_asio_awaitables(state, true); }

constexpr std::int64_t tasks = 100'000;

BENCHMARK(baseline_asio_shared_timer)
    ->ArgName("tasks")
    ->Arg(tasks)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(baseline_asio_own_timer)
    ->ArgName("tasks")
    ->Arg(tasks)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(baton_event)->ArgName("tasks")->Arg(tasks)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(baton_event_context_16_vars)
    ->ArgName("tasks")
    ->Arg(tasks)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(baton_event_own_var)
    ->ArgName("tasks")
    ->Arg(tasks)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(baton_sleep)->ArgName("tasks")->Arg(tasks)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(baton_sleep_named_duration)
    ->ArgName("tasks")
    ->Arg(tasks)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace baton_bench

BENCHMARK_MAIN();
