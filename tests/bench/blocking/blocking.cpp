// SPDX-License-Identifier: BSL-1.0
// to_thread at sustained load, on baton and on a hand-written Asio post-to-pool bridge: 1000
// tasks, each looping `co_await to_thread([] { return 1; })`, and one task alone doing the same
// (the round trip). The tokio twin is tokio/src/main.rs; run.py builds and runs all three and
// prints the ratios docs/benchmarks.md reads.
//
//   blocking --impl baton|asio --mode sustained|round-trip --threads N [--min-time S]
//            [--count-allocs]
//
// Prints one line: `ns_per_call <median> <min> <max> reps <r>` (wall time of a repetition over
// the calls it made; a repetition is 1000 tasks x 200 calls, or 20 000 calls of one task), and
// with --count-allocs `allocs_per_call <x>` (every malloc-family call in the process during one
// repetition, over its calls). --threads is the number of loop threads (baton: run_options::
// threads; Asio: threads running the io_context). Both pools have baton's default size,
// min(32, cores + 4).
#include <baton/run.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>
#include <baton/to_thread.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <vector>

// ---- counting malloc (only while `counting`) --------------------------------------------------

extern "C" {
void* __libc_malloc(std::size_t n);
void* __libc_calloc(std::size_t count, std::size_t n);
void* __libc_realloc(void* p, std::size_t n);
void* __libc_memalign(std::size_t align, std::size_t n);
void __libc_free(void* p);
}

namespace {
// Relaxed: a tally read after the threads that made the calls were joined or went quiet.
std::atomic<bool> counting{false};
std::atomic<std::int64_t> allocations{0};
void* counted(void* p) noexcept {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  return p;
}
}  // namespace

extern "C" {
void* malloc(std::size_t n) { return counted(__libc_malloc(n)); }
void* calloc(std::size_t count, std::size_t n) { return counted(__libc_calloc(count, n)); }
void* realloc(void* p, std::size_t n) { return counted(__libc_realloc(p, n)); }
void* aligned_alloc(std::size_t align, std::size_t n) { return counted(__libc_memalign(align, n)); }
void* memalign(std::size_t align, std::size_t n) { return counted(__libc_memalign(align, n)); }
int posix_memalign(void** out, std::size_t align, std::size_t n) {
  void* p = counted(__libc_memalign(align, n));
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void free(void* p) { __libc_free(p); }
}

namespace {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

constexpr int tasks_in_flight = 1000;
constexpr int calls_per_task = 200;
constexpr int round_trip_calls = 20'000;

std::size_t pool_size() {
  return std::min<std::size_t>(32, std::thread::hardware_concurrency() + 4);
}

struct options {
  std::string impl = "baton";
  std::string mode = "sustained";
  unsigned threads = 1;
  double min_time = 1.0;
  bool count_allocs = false;
};

std::int64_t calls_per_rep(const options& o) {
  return o.mode == "sustained" ? std::int64_t{tasks_in_flight} * calls_per_task : round_trip_calls;
}

// ---- baton ----------------------------------------------------------------------------------

baton::task<> baton_caller(int calls, std::int64_t& sum) {
  for (int i = 0; i < calls; ++i) sum += co_await baton::to_thread([] { return 1; });
}

baton::task<> baton_rep(const options& o) {
  std::int64_t sum = 0;
  if (o.mode == "sustained") {
    std::vector<baton::task_handle<>> hs;
    hs.reserve(tasks_in_flight);
    std::vector<std::int64_t> sums(tasks_in_flight);
    for (int i = 0; i < tasks_in_flight; ++i) {
      hs.push_back(baton::spawn(baton_caller(calls_per_task, sums[static_cast<std::size_t>(i)])));
    }
    for (auto& h : hs) co_await h;
    for (auto s : sums) sum += s;
  } else {
    co_await baton_caller(round_trip_calls, sum);
  }
  if (sum != calls_per_rep(o)) std::abort();  // every call returned its 1
}

double baton_time(const options& o) {
  baton::run_options ro;
  ro.threads = o.threads;
  ro.blocking_threads = pool_size();
  double elapsed = 0;
  baton::run(
      [](const options& opts, double& out) -> baton::task<> {
        co_await baton::to_thread([] {});  // the pool's first thread exists before timing
        const auto t0 = clock_type::now();
        co_await baton_rep(opts);
        out = std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
      }(o, elapsed),
      ro);
  return elapsed;
}

// ---- the hand-written Asio bridge (as in bridge_bench.cpp) ------------------------------------

template <class F, class Token>
auto post_to_pool_and_back(asio::thread_pool::executor_type pool, F f, Token&& token) {
  return asio::async_initiate<Token, void(std::exception_ptr, int)>(
      [pool](auto handler, F fn) {
        auto back = asio::prefer(asio::get_associated_executor(handler),
                                 asio::execution::outstanding_work.tracked);
        asio::post(pool, [handler = std::move(handler), fn = std::move(fn), back]() mutable {
          std::exception_ptr error;
          int r = 0;
          try {
            r = fn();
          } catch (...) {
            error = std::current_exception();
          }
          asio::post(back, [handler = std::move(handler), error, r]() mutable {
            std::move(handler)(error, r);
          });
        });
      },
      token, std::move(f));
}

asio::awaitable<void> asio_caller(asio::thread_pool& pool, int calls,
                                  std::atomic<std::int64_t>& sum) {
  std::int64_t mine = 0;
  for (int i = 0; i < calls; ++i) {
    mine += co_await post_to_pool_and_back(
        pool.get_executor(), [] { return 1; }, asio::use_awaitable);
  }
  sum.fetch_add(mine, std::memory_order_relaxed);
}

double asio_time(const options& o) {
  asio::io_context ioc(static_cast<int>(o.threads));
  asio::thread_pool pool(pool_size());
  std::atomic<std::int64_t> sum{0};
  const int tasks = o.mode == "sustained" ? tasks_in_flight : 1;
  const int calls = o.mode == "sustained" ? calls_per_task : round_trip_calls;
  const auto t0 = clock_type::now();
  for (int i = 0; i < tasks; ++i)
    asio::co_spawn(ioc, asio_caller(pool, calls, sum), asio::detached);
  std::vector<std::thread> extra;
  for (unsigned i = 1; i < o.threads; ++i) extra.emplace_back([&] { ioc.run(); });
  ioc.run();
  for (auto& t : extra) t.join();
  const double ns = std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
  pool.join();
  if (sum.load() != calls_per_rep(o)) std::abort();
  return ns;
}

// ---- driver ---------------------------------------------------------------------------------

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "blocking: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::string(argv[++i]);
    };
    if (a == "--impl") {
      o.impl = value();
    } else if (a == "--mode") {
      o.mode = value();
    } else if (a == "--threads") {
      o.threads = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--min-time") {
      o.min_time = std::stod(value());
    } else if (a == "--count-allocs") {
      o.count_allocs = true;
    } else {
      std::fprintf(stderr, "blocking: unknown option %s\n", a.c_str());
      std::exit(2);
    }
  }
  if ((o.impl != "baton" && o.impl != "asio") ||
      (o.mode != "sustained" && o.mode != "round-trip") || o.threads == 0) {
    std::fprintf(stderr, "blocking: --impl baton|asio --mode sustained|round-trip --threads N\n");
    std::exit(2);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  auto once = [&] { return o.impl == "baton" ? baton_time(o) : asio_time(o); };
  once();  // warm-up: threads, caches, the allocator's arenas
  std::vector<double> per_call;
  double total = 0;
  while (per_call.size() < 3 || (total < o.min_time * 1e9 && per_call.size() < 50)) {
    const double ns = once();
    total += ns;
    per_call.push_back(ns / static_cast<double>(calls_per_rep(o)));
  }
  std::sort(per_call.begin(), per_call.end());
  std::printf("ns_per_call %.1f %.1f %.1f reps %zu", per_call[per_call.size() / 2],
              per_call.front(), per_call.back(), per_call.size());
  if (o.count_allocs) {
    allocations.store(0, std::memory_order_relaxed);
    counting.store(true, std::memory_order_relaxed);
    const double ns = once();
    counting.store(false, std::memory_order_relaxed);
    (void)ns;
    std::printf(" allocs_per_call %.3f",
                static_cast<double>(allocations.load(std::memory_order_relaxed)) /
                    static_cast<double>(calls_per_rep(o)));
  }
  std::printf("\n");
}
