// SPDX-License-Identifier: BSL-1.0
// The fine-grained workload on baton: 256 request tasks; each, 300 to 1000 times, spawns a child
// that burns a fixed amount of CPU and reads a context var, awaits it, then yields. The same
// workload is written for tokio (tokio/src/main.rs) and Go (go/main.go); run.sh builds and runs
// all three and prints them side by side. docs/benchmarks.md reads it.
//
//   workload --threads N --grain NS [--min-time S]
//
// Prints one line: `ns_per_round <median> <min> <max> reps <r>`. A round is one spawn + burn +
// var read + join + yield; the time of one repetition is the wall time from the first spawn of
// a request to the last request joined, divided by the number of rounds (the same in every
// language: request i does 300 + (i * 7919) % 701 rounds). The burn is a loop whose iteration
// count is calibrated at start-up to take NS nanoseconds on this machine, in this language.
#include <baton/context_var.hpp>
#include <baton/run.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

constexpr int requests = 256;

std::uint64_t rounds_of(int request) {
  return 300 + (static_cast<std::uint64_t>(request) * 7919) % 701;
}

/// The CPU a child burns: a xorshift chain, each step depending on the last, so it cannot be
/// vectorised or folded. The result is returned and used, so it cannot be dropped either.
[[gnu::noinline]] std::uint64_t burn(std::uint64_t iterations, std::uint64_t seed) {
  std::uint64_t x = seed | 1;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

/// Iterations of burn() that take `ns` nanoseconds here (the fastest of five timings).
std::uint64_t calibrate(double ns) {
  if (ns <= 0) return 0;
  constexpr std::uint64_t probe = 2'000'000;
  double best = 1e300;
  volatile std::uint64_t sink = 0;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = clock_type::now();
    sink = sink + burn(probe, 7 + static_cast<std::uint64_t>(i));
    const double el = std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
    best = std::min(best, el);
  }
  return static_cast<std::uint64_t>(ns * probe / best + 0.5);
}

baton::context_var<std::uint64_t> request_id("request_id");
std::uint64_t iterations = 0;

baton::task<std::uint64_t> child(std::uint64_t seed) {
  const std::uint64_t x = burn(iterations, seed);
  co_return x + request_id.get();
}

baton::task<std::uint64_t> request(int i) {
  (void)request_id.set(static_cast<std::uint64_t>(i));
  std::uint64_t acc = 0;
  const std::uint64_t n = rounds_of(i);
  for (std::uint64_t r = 0; r < n; ++r) {
    acc += co_await baton::spawn(child(r));
    co_await baton::sleep(std::chrono::nanoseconds(0));
  }
  co_return acc;
}

/// One repetition: nanoseconds per round.
baton::task<double> repetition() {
  std::uint64_t total_rounds = 0;
  for (int i = 0; i < requests; ++i) total_rounds += rounds_of(i);
  const auto t0 = clock_type::now();
  std::vector<baton::task_handle<std::uint64_t>> handles;
  handles.reserve(requests);
  for (int i = 0; i < requests; ++i) handles.push_back(baton::spawn(request(i)));
  std::uint64_t check = 0;
  for (auto& h : handles) check += co_await h;
  const double el = std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
  if (check == 0) std::fprintf(stderr, "workload: no result\n");
  co_return el / static_cast<double>(total_rounds);
}

}  // namespace

int main(int argc, char** argv) {
  unsigned threads = 1;
  double grain = 0;
  double min_time = 1.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--threads") == 0) {
      threads = static_cast<unsigned>(std::atoi(argv[i + 1]));
    } else if (std::strcmp(argv[i], "--grain") == 0) {
      grain = std::atof(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--min-time") == 0) {
      min_time = std::atof(argv[i + 1]);
    } else {
      std::fprintf(stderr, "usage: workload --threads N --grain NS [--min-time S]\n");
      return 2;
    }
  }
  iterations = calibrate(grain);
  baton::run_options opts;
  opts.threads = std::max(1u, threads);
  std::vector<double> reps;
  const auto start = clock_type::now();
  // At least 5 repetitions and min_time seconds; each one on a fresh loop.
  while (reps.size() < 5 ||
         std::chrono::duration<double>(clock_type::now() - start).count() < min_time) {
    reps.push_back(baton::run(repetition(), opts));
    if (reps.size() >= 200) break;
  }
  std::sort(reps.begin(), reps.end());
  std::printf("ns_per_round %.1f %.1f %.1f reps %zu\n", reps[reps.size() / 2], reps.front(),
              reps.back(), reps.size());
  return 0;
}
