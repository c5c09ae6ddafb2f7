// SPDX-License-Identifier: BSL-1.0
// task<T>: lazy coroutines, nested awaits sharing the context, deep chains.
#include <baton/task.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>

#include <stdexcept>
#include <string>

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

  TEST_CASE("task is move-only") {
    static_assert(!std::is_copy_constructible_v<task<int>>);
    static_assert(std::is_nothrow_move_constructible_v<task<int>>);
  }

}  // TEST_SUITE
