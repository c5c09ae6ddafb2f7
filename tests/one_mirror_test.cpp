// SPDX-License-Identifier: BSL-1.0
// context_var::on_switch in a process with exactly one mirror. Mirrors are installed for the
// rest of the process, and a sync with one mirror and inline values takes a path of its own
// (runtime/context.cpp, sync_mirrors_slow), which context_var_test's later cases, with more
// mirrors installed, no longer reach. Every case here shares the one mirrored var.
#include <baton/baton.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <vector>

namespace {

using baton::context;
using baton::context_var;

context_var<int> mirrored("mirrored");
context_var<int> plain("plain");  // never mirrored

thread_local std::optional<int> seen;  // what the mirror last told this thread
thread_local int calls = 0;
thread_local int depth = 0;            // mirror calls running on this thread now
thread_local int max_depth = 0;        // the most ever running at once
thread_local bool set_inside = false;  // the mirror sets the mirrored var once while it runs

void install_once() {
  static const bool installed = [] {
    mirrored.on_switch([](const int* p) {
      ++calls;
      ++depth;
      if (depth > max_depth) max_depth = depth;
      seen = p != nullptr ? std::optional<int>(*p) : std::nullopt;
      if (set_inside) {
        set_inside = false;
        (void)mirrored.set(-1);  // a sync while the mirror runs: it must not call it again
      }
      --depth;
    });
    return true;
  }();
  (void)installed;
}

std::optional<int> current() { return mirrored.try_get(); }

}  // namespace

TEST_CASE("one mirror follows set, reset and context::run, with nullptr outside any value") {
  install_once();
  CHECK_FALSE(seen.has_value());
  context().run([] {
    auto t1 = mirrored.set(1);
    CHECK(seen == 1);
    auto t2 = mirrored.set(2);
    CHECK(seen == 2);
    const int before = calls;
    auto t3 = plain.set(9);  // another var: nothing to report
    (void)mirrored.set(2);   // the same value again
    CHECK(calls == before);
    context().run([] { CHECK_FALSE(seen.has_value()); });
    CHECK(seen == 2);
    plain.reset(t3);
    mirrored.reset(t2);
    CHECK(seen == 1);
    mirrored.reset(t1);
    CHECK_FALSE(seen.has_value());
  });
  CHECK_FALSE(seen.has_value());
}

TEST_CASE("one mirror tells a value of 0 from no value, both ways") {
  // An int 0 is stored as bits 0, as the record of "nullptr reported" is: only the key tells
  // them apart.
  install_once();
  context().run([] {
    CHECK_FALSE(seen.has_value());
    auto t0 = mirrored.set(0);
    CHECK(seen == 0);
    context().run([] { CHECK_FALSE(seen.has_value()); });
    CHECK(seen == 0);
    mirrored.reset(t0);
    CHECK_FALSE(seen.has_value());
  });
}

TEST_CASE(
    "one mirror: tasks taking turns see their own values, and equal values call per task and "
    "per Asio turn of the loop, not per switch") {
  install_once();
  auto run_turns = [](std::vector<int> values) {
    int switches_called = 0;
    bool agreed = true;
    baton::run([&]() -> baton::task<> {
      auto turns = [](int value, bool& ok) -> baton::task<> {
        (void)mirrored.set(value);
        for (int i = 0; i < 100; ++i) {
          co_await baton::sleep(std::chrono::milliseconds(0));
          ok = ok && seen == current();
        }
      };
      const int before = calls;
      std::vector<baton::task_handle<>> tasks;
      for (int v : values) tasks.push_back(baton::spawn(turns(v, agreed)));
      for (auto& t : tasks) co_await t;
      switches_called = calls - before;
    }());
    CHECK(agreed);
    return switches_called;
  };
  CHECK(run_turns({1, 2, 3, 4}) >= 400);  // every switch changes the value
  // Equal values, 100 turns each: a switch between two of the tasks calls nothing. What calls
  // is a change to or from a context without the value: per task, its set, the switch in from
  // the parent's context (or a task's before its set) and the switch back to the parent at its
  // end (3 each); per Asio turn, which the loop may take after every 64 resumes when 50 us have
  // passed (so how many depends on the machine's speed), the switch to the handlers' empty
  // context and back (2 each).
  constexpr int tasks = 4;
  constexpr int resumes = tasks * 101 + tasks;  // the turns, each task's start, the parent's
  constexpr int asio_turns = resumes / 64 + 1;
  CHECK(run_turns({5, 5, 5, 5}) <= 3 * tasks + 2 * asio_turns);
}

TEST_CASE("one mirror is not re-entered by a set made while it runs (which its contract forbids)") {
  install_once();
  context().run([] {
    max_depth = 0;
    set_inside = true;
    auto t = mirrored.set(10);  // the mirror runs, sets -1 inside, and is not called again
    CHECK(max_depth == 1);
    CHECK(current() == -1);
    // The next sync reports what the context holds now.
    auto t2 = mirrored.set(11);
    CHECK(seen == 11);
    mirrored.reset(t2);
    CHECK(seen == -1);
    (void)t;
  });
}

TEST_CASE("one mirror on two loop threads agrees with get() after every await") {
  install_once();
  std::atomic<int> wrong{0};
  baton::run_options opts;
  opts.threads = 2;
  baton::run(
      [](std::atomic<int>& bad) -> baton::task<> {
        auto worker = [](int id, std::atomic<int>& b) -> baton::task<> {
          if (id % 3 != 0) (void)mirrored.set(id % 5);  // some share a value, some have none
          for (int i = 0; i < 50; ++i) {
            co_await baton::sleep(std::chrono::milliseconds(0));
            if (seen != current()) b.fetch_add(1, std::memory_order_relaxed);
            if (i % 10 == 0) {
              const int got = co_await baton::to_thread([] {
                return seen == current() ? 0 : 1;  // a pool thread follows the job's context
              });
              b.fetch_add(got, std::memory_order_relaxed);
            }
          }
        };
        std::vector<baton::task_handle<>> tasks;
        for (int id = 0; id < 200; ++id) tasks.push_back(baton::spawn(worker(id, bad)));
        for (auto& t : tasks) co_await t;
      }(wrong),
      opts);
  CHECK(wrong.load() == 0);
}
