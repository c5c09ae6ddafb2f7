// SPDX-License-Identifier: BSL-1.0
// Sleeping tasks at scale on baton: N tasks parked in sleep(1 h) on a loop of T threads, the
// resident memory they hold (RSS from /proc/self/statm, before and after they park, over N),
// the time to cancel them all (cancel() on every handle: each task leaves the timers and is
// queued with its cancellation), and the time until every one has ended (each throws
// cancelled_error out of its sleep; the loop yields until all are done, rethrowing nothing).
// Times are the process's CPU time (CLOCK_PROCESS_CPUTIME_ID: every loop thread's), which
// other processes on a busy machine do not inflate, and wall time. The tokio twin is
// tokio/src/main.rs; run.py builds and runs both.
//
//   timers [--tasks N] [--threads T]     (defaults 1 000 000 and 1)
//
// Prints one line: `rss_per_task <B> cancel_cpu_ms <ms> end_cpu_ms <ms> cancel_wall_ms <ms>
// end_wall_ms <ms> tasks <N> threads <T>`.
#include <baton/errors.hpp>
#include <baton/run.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

double resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  double size = 0;
  double resident = 0;
  statm >> size >> resident;
  return resident * static_cast<double>(sysconf(_SC_PAGESIZE));
}

double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double wall_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::atomic<std::size_t> parked{0};  // sleepers that have reached their sleep

baton::task<> sleeper() {
  parked.fetch_add(1, std::memory_order_relaxed);  // relaxed: only counted, nothing published
  co_await baton::sleep(1h);
}

baton::task<> body(std::size_t n, unsigned threads) {
  std::vector<baton::task_handle<>> handles;
  handles.reserve(n);
  co_await baton::sleep(0ms);
  const double before = resident_bytes();
  for (std::size_t i = 0; i < n; ++i) handles.push_back(baton::spawn(sleeper()));
  // Every sleeper runs up to its sleep (one yield on one thread, where the queue is FIFO).
  while (parked.load(std::memory_order_relaxed) != n) co_await baton::sleep(0ms);
  const double after = resident_bytes();
  const double cpu0 = cpu_ms();
  const double wall0 = wall_ms();
  for (auto& h : handles) h.cancel();
  const double cpu1 = cpu_ms();
  const double wall1 = wall_ms();
  for (auto& h : handles) {
    while (!h.done()) co_await baton::sleep(0ms);
  }
  const double cpu2 = cpu_ms();
  const double wall2 = wall_ms();
  for (auto& h : handles) {
    if (!h.cancelled()) std::abort();
  }
  std::printf(
      "rss_per_task %.1f cancel_cpu_ms %.1f end_cpu_ms %.1f cancel_wall_ms %.1f end_wall_ms %.1f "
      "tasks %zu threads %u\n",
      (after - before) / static_cast<double>(n), cpu1 - cpu0, cpu2 - cpu0, wall1 - wall0,
      wall2 - wall0, n, threads);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 1'000'000;
  baton::run_options opts;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--tasks") {
      n = std::stoul(argv[i + 1]);
    } else if (std::string(argv[i]) == "--threads") {
      opts.threads = std::max(1u, static_cast<unsigned>(std::stoul(argv[i + 1])));
    } else {
      std::fprintf(stderr, "usage: timers [--tasks N] [--threads T]\n");
      return 2;
    }
  }
  baton::run(body(n, opts.threads), opts);
}
