// SPDX-License-Identifier: BSL-1.0
// What contexts cost: context_var::get, set + reset, copy_context, each beside a baseline
// measured in the same run. Built twice (see meson.build): against the static libbaton as
// context_bench and against the shared one as context_shared_bench. docs/benchmarks.md reads it.
#include <baton/context.hpp>
#include <baton/context_var.hpp>
#include <baton/token.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace baton_bench {

// tls_probe.cpp, a separate -fPIC shared library.
int* probe_read_default_tls() noexcept;
int* probe_read_initial_exec_tls() noexcept;

namespace {

using baton::context_var;

// Every benchmark reads the var or key that was set LAST: the worst case for a flat array
// scanned from the front, and no better than any other var for the trie.

/// n vars of type T, made one after another (so their ids are consecutive).
template <class T>
std::vector<std::unique_ptr<context_var<T>>> make_vars(std::int64_t n) {
  std::vector<std::unique_ptr<context_var<T>>> vars;
  for (std::int64_t i = 0; i < n; ++i) {
    vars.push_back(std::make_unique<context_var<T>>(std::to_string(i)));
  }
  return vars;
}

/// Runs body inside a fresh context in which each of n int vars has a value; body gets the last.
template <class Body>
void with_int_vars(std::int64_t n, Body&& body) {
  auto vars = make_vars<int>(n);
  baton::context().run([&] {
    for (std::int64_t i = 0; i < n; ++i) (void)vars[static_cast<std::size_t>(i)]->set(int(i));
    body(*vars.back());
  });
}

// ---- get() --------------------------------------------------------------------------------

constinit thread_local int* tls_int = nullptr;

/// Baseline: the floor of get(), one thread_local pointer load in this executable.
void baseline_tls_pointer_read(benchmark::State& state) {
  int x = 1;
  tls_int = &x;
  for (auto _ : state) {
    int* p = tls_int;  // reloaded every time: DoNotOptimize clobbers memory
    benchmark::DoNotOptimize(p);
  }
  tls_int = nullptr;
}
BENCHMARK(baseline_tls_pointer_read);

/// Baseline: the same read from inside a -fPIC shared library, default TLS model (a call).
void baseline_tls_read_in_shared_lib_default_model(benchmark::State& state) {
  for (auto _ : state) {
    int* p = probe_read_default_tls();
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(baseline_tls_read_in_shared_lib_default_model);

/// Baseline: the same read from inside a -fPIC shared library, initial-exec (a call).
void baseline_tls_read_in_shared_lib_initial_exec(benchmark::State& state) {
  for (auto _ : state) {
    int* p = probe_read_initial_exec_tls();
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(baseline_tls_read_in_shared_lib_initial_exec);

thread_local std::unordered_map<std::uint64_t, int>* tls_map = nullptr;

/// Baseline: std::unordered_map<uint64_t, int> find through a thread_local pointer, n keys.
void baseline_unordered_map_find(benchmark::State& state) {
  const auto n = state.range(0);
  std::unordered_map<std::uint64_t, int> map;
  for (std::int64_t i = 1; i <= n; ++i) map.emplace(static_cast<std::uint64_t>(i), int(i));
  tls_map = &map;
  std::uint64_t key = static_cast<std::uint64_t>(n);
  benchmark::DoNotOptimize(key);  // not a constant the compiler can fold into the hash
  for (auto _ : state) {
    int v = tls_map->find(key)->second;
    benchmark::DoNotOptimize(v);
  }
  tls_map = nullptr;
}
BENCHMARK(baseline_unordered_map_find)->ArgName("vars")->Arg(1)->Arg(4)->Arg(16)->Arg(1000);

/// context_var<int>::get() with n vars set in the current context.
void get_int(benchmark::State& state) {
  with_int_vars(state.range(0), [&](const context_var<int>& var) {
    for (auto _ : state) {
      int v = var.get();
      benchmark::DoNotOptimize(v);
    }
  });
}
BENCHMARK(get_int)->ArgName("vars")->Arg(1)->Arg(4)->Arg(16)->Arg(1000);

// A value that fits std::string's small buffer, so neither row measures malloc.
constexpr const char* short_value = "ada-lovelace";
thread_local std::string* tls_string = nullptr;

/// Baseline: copying a std::string through a thread_local pointer.
void baseline_string_copy(benchmark::State& state) {
  std::string s = short_value;
  tls_string = &s;
  for (auto _ : state) {
    std::string v = *tls_string;
    benchmark::DoNotOptimize(v);
  }
  tls_string = nullptr;
}
BENCHMARK(baseline_string_copy);

/// context_var<std::string>::get() (a boxed value, returned by copy) with 4 string vars set.
void get_string(benchmark::State& state) {
  auto vars = make_vars<std::string>(state.range(0));
  baton::context().run([&] {
    for (auto& v : vars) (void)v->set(short_value);
    const context_var<std::string>& var = *vars.back();
    for (auto _ : state) {
      std::string v = var.get();
      benchmark::DoNotOptimize(v);
    }
  });
}
BENCHMARK(get_string)->ArgName("vars")->Arg(4);

// ---- set + reset, copy_context --------------------------------------------------------------

/// Baseline: one reference count up and down, the unit a copy is budgeted in.
void baseline_shared_ptr_copy_drop(benchmark::State& state) {
  auto shared = std::make_shared<int>(1);
  for (auto _ : state) {
    std::shared_ptr<int> copy = shared;
    benchmark::DoNotOptimize(copy);
  }
}
BENCHMARK(baseline_shared_ptr_copy_drop);

/// Baseline: one small allocation and its release, the unit a set is budgeted in.
void baseline_make_shared_drop(benchmark::State& state) {
  for (auto _ : state) {
    auto p = std::make_shared<int>(1);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(baseline_make_shared_drop);

/// set() of a var that already has a value, then reset() with the token, n vars set.
void set_reset(benchmark::State& state) {
  with_int_vars(state.range(0), [&](context_var<int>& var) {
    int value = 42;
    for (auto _ : state) {
      benchmark::DoNotOptimize(value);
      auto t = var.set(value);
      var.reset(t);
    }
    benchmark::DoNotOptimize(var.get());
  });
}
BENCHMARK(set_reset)->ArgName("vars")->Arg(1)->Arg(4)->Arg(16);

/// set() + reset() of a value that is boxed (a std::string in its small buffer): the set makes a
/// box and the reset releases it. Against baseline_make_shared_drop, one small malloc and free.
void set_reset_boxed(benchmark::State& state) {
  baton::context().run([&] {
    context_var<std::string> var("boxed");
    (void)var.set(std::string(short_value));
    const std::string value(short_value);
    for (auto _ : state) {
      auto t = var.set(value);
      var.reset(t);
    }
    benchmark::DoNotOptimize(var.get());
  });
}
BENCHMARK(set_reset_boxed);

/// copy_context() and dropping the copy, n vars set in the current context.
void copy_context(benchmark::State& state) {
  with_int_vars(state.range(0), [&](const context_var<int>&) {
    for (auto _ : state) {
      baton::context c = baton::copy_context();
      benchmark::DoNotOptimize(c);
    }
  });
}
BENCHMARK(copy_context)->ArgName("vars")->Arg(1)->Arg(1000);

}  // namespace
}  // namespace baton_bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("libbaton", BATON_BENCH_LIBRARY);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
