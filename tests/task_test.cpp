// SPDX-License-Identifier: BSL-1.0
// task<T>: lazy coroutines, nested awaits sharing the context, deep chains.
#include <baton/task.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>

#include <stdexcept>
#include <string>
#include <utility>

using baton::task;
using baton_test::run_task;

namespace {

baton::context_var<std::string> user("user");

task<int> answer() { co_return 42; }

task<void> set_user(std::string who) {
  (void)user.set(std::move(who));
  co_return;
}

task<int> thrower() {
  throw std::runtime_error("inner failure");
  co_return 0;
}

// Sanitizer instrumentation stops g++ from turning symmetric transfer into tail calls, so the
// chain grows the stack there (docs/notes/002-symmetric-transfer-and-sanitizers.md).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int deep_chain = 2000;
#else
constexpr int deep_chain = 200000;
#endif

/// Marks *alive while the one object it ends up in exists: as a coroutine parameter, the frame.
struct frame_witness {
  bool* alive;
  explicit frame_witness(bool* a) : alive(a) { *alive = true; }
  frame_witness(frame_witness&& o) noexcept : alive(std::exchange(o.alive, nullptr)) {}
  ~frame_witness() {
    if (alive != nullptr) *alive = false;
  }
};

task<int> seven(frame_witness) { co_return 7; }

task<long> depth(int n) {
  if (n == 0) co_return 0;
  co_return 1 + co_await depth(n - 1);
}

}  // namespace

TEST_SUITE("task") {
  TEST_CASE("a task does not start until awaited") {
    bool started = false;
    auto make = [&]() -> task<> {
      started = true;
      co_return;
    };
    run_task([&]() -> task<> {
      auto t = make();
      CHECK_FALSE(started);
      co_await std::move(t);
      CHECK(started);
    });
  }

  TEST_CASE("co_await returns the task's value") {
    CHECK(run_task([]() -> task<int> { co_return co_await answer() + 1; }) == 43);
  }

  TEST_CASE("co_await of a plain task shares the caller's context") {
    run_task([]() -> task<> {
      co_await set_user("ada");
      CHECK(user.get() == "ada");
    });
  }

  TEST_CASE("an exception in an awaited task is rethrown at the co_await") {
    run_task([]() -> task<> {
      CHECK_THROWS_WITH_AS(co_await thrower(), "inner failure", std::runtime_error);
      co_return;
    });
  }

  TEST_CASE("an await chain 200000 deep does not overflow the stack") {
    CHECK(run_task([]() -> task<long> { co_return co_await depth(deep_chain); }) == deep_chain);
  }

  TEST_CASE("a dropped task that never started is destroyed without running") {
    bool ran = false;
    {
      auto t = [&]() -> task<> {
        ran = true;
        co_return;
      }();
    }
    CHECK_FALSE(ran);
  }

  // Misuse: a clear baton error, never a crash (with or without NDEBUG).

  TEST_CASE("an awaited task is left empty and its frame is gone by the end of the co_await") {
    run_task([]() -> task<> {
      bool frame_alive = false;
      task<int> t = seven(frame_witness(&frame_alive));
      CHECK(t);
      CHECK(frame_alive);
      CHECK(co_await std::move(t) == 7);
      CHECK_FALSE(t);            // the await took the coroutine
      CHECK_FALSE(frame_alive);  // and destroyed the frame, while t is still in scope
    });
  }

  TEST_CASE("awaiting a task twice throws runtime_error naming the task type and the awaiter") {
    run_task([]() -> task<> {
      task<int> t = []() -> task<int> { co_return 42; }();
      CHECK(co_await std::move(t) == 42);
      try {
        (void)co_await std::move(t);
        FAIL("a second await must throw");
      } catch (const baton::runtime_error& e) {
        const std::string what = e.what();
        CHECK(what.rfind("baton: ", 0) == 0);
        CHECK(what.find("task<int>") != std::string::npos);
        CHECK(what.find("already awaited") != std::string::npos);
        CHECK(what.find("'main'") != std::string::npos);
      }
    });
  }

  TEST_CASE("awaiting a moved-from task throws runtime_error") {
    run_task([]() -> task<> {
      task<std::string> t = []() -> task<std::string> { co_return "x"; }();
      task<std::string> u = std::move(t);
      try {
        (void)co_await std::move(t);
        FAIL("awaiting a moved-from task must throw");
      } catch (const baton::runtime_error& e) {
        CHECK(std::string(e.what()).find("empty task<std::__cxx11::basic_string") !=
              std::string::npos);
        CHECK(std::string(e.what()).find("moved from") != std::string::npos);
      }
      CHECK(co_await std::move(u) == "x");  // the task it moved to is intact
    });
  }

  TEST_CASE("awaiting a default-constructed task<void> throws runtime_error") {
    run_task([]() -> task<> {
      task<> empty;
      CHECK_THROWS_AS(co_await std::move(empty), baton::runtime_error);
      co_return;
    });
  }

  TEST_CASE("awaiting a task whose body threw, a second time, throws runtime_error") {
    run_task([]() -> task<> {
      task<> t = []() -> task<> {
        throw std::logic_error("body");
        co_return;
      }();
      CHECK_THROWS_AS(co_await std::move(t), std::logic_error);
      CHECK_THROWS_AS(co_await std::move(t), baton::runtime_error);
    });
  }

  TEST_CASE("task is move-only") {
    static_assert(!std::is_copy_constructible_v<task<int>>);
    static_assert(std::is_nothrow_move_constructible_v<task<int>>);
  }

}  // TEST_SUITE
