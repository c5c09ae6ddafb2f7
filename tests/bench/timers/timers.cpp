// SPDX-License-Identifier: BSL-1.0
// Sleeping tasks at scale on baton: N tasks parked in sleep(1 h) on one loop thread, the
// resident memory they hold (RSS from /proc/self/statm, before and after they park, over N),
// and the time to cancel them all and see every one end (cancel each handle, then await each).
// The tokio twin is tokio/src/main.rs; run.py builds and runs both.
//
//   timers [--tasks N]          (default 1 000 000)
//
// Prints one line: `rss_per_task <bytes> cancel_all_ms <ms> tasks <N>`.
#include <baton/errors.hpp>
#include <baton/run.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <unistd.h>

#include <chrono>
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

baton::task<> sleeper() { co_await baton::sleep(1h); }

baton::task<> body(std::size_t n) {
  std::vector<baton::task_handle<>> handles;
  handles.reserve(n);
  co_await baton::sleep(0ms);
  const double before = resident_bytes();
  for (std::size_t i = 0; i < n; ++i) handles.push_back(baton::spawn(sleeper()));
  co_await baton::sleep(0ms);  // every sleeper runs (FIFO) up to its sleep
  const double after = resident_bytes();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto& h : handles) h.cancel();
  std::size_t cancelled = 0;
  for (auto& h : handles) {
    try {
      co_await h;
    } catch (const baton::cancelled_error&) {
      ++cancelled;
    }
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (cancelled != n) std::abort();
  std::printf("rss_per_task %.1f cancel_all_ms %.1f tasks %zu\n",
              (after - before) / static_cast<double>(n), ms, n);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 1'000'000;
  if (argc == 3 && std::string(argv[1]) == "--tasks") n = std::stoul(argv[2]);
  baton::run(body(n));
}
