// SPDX-License-Identifier: BSL-1.0
// gather(): results in argument order, failures, return_exceptions, cancellation (asyncio.gather).
#include <baton/gather.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/sample_tasks.hpp>
#include <support/suspended_at.hpp>

#include <chrono>
#include <exception>
#include <stdexcept>
#include <variant>

using namespace std::chrono_literals;
using baton::task;
using namespace baton_test;  // run_task and the sample tasks

TEST_SUITE("gather") {
  TEST_CASE("gather returns every result in argument order, void as monostate") {
    run_task([]() -> task<> {
      auto [a, b, c] = co_await baton::gather(baton::spawn(value_after(1, 2ms)),
                                              baton::spawn(value_after(2, 0ms)),
                                              baton::spawn([]() -> task<> { co_return; }()));
      CHECK(a == 1);
      CHECK(b == 2);
      static_assert(std::is_same_v<decltype(c), std::monostate>);
    });
  }

  TEST_CASE("gather over a vector of handles") {
    run_task([]() -> task<> {
      std::vector<baton::task_handle<int>> hs;
      for (int i = 0; i < 10; ++i) hs.push_back(baton::spawn(value_after(i, 0ms)));
      auto r = co_await baton::gather(std::move(hs));
      REQUIRE(r.size() == 10);
      for (int i = 0; i < 10; ++i) CHECK(r[i] == i);
    });
  }

  TEST_CASE("gather rethrows the first failure") {
    run_task([]() -> task<> {
      CHECK_THROWS_AS(
          co_await baton::gather(baton::spawn(fail_after(0ms)), baton::spawn(value_after(1, 0ms))),
          std::runtime_error);
    });
  }

  TEST_CASE("gather with return_exceptions returns failures as values") {
    run_task([]() -> task<> {
      auto [a, b] = co_await baton::gather(baton::return_exceptions, baton::spawn(fail_after(0ms)),
                                           baton::spawn(value_after(7, 0ms)));
      CHECK(a.index() == 1);
      REQUIRE(b.index() == 0);
      CHECK(std::get<0>(b) == 7);
    });
  }

  TEST_CASE("cancelling a task in gather cancels every gathered task") {
    run_task([]() -> task<> {
      auto x = baton::spawn(sleep_forever());
      auto y = baton::spawn(sleep_forever());
      auto g = baton::spawn([](auto a, auto b) -> task<> { co_await baton::gather(a, b); }(x, y));
      REQUIRE(co_await baton_test::suspended_at(g, "task"));
      g.cancel();
      CHECK_THROWS_AS(co_await g, baton::cancelled_error);
      CHECK_THROWS_AS(co_await x, baton::cancelled_error);
      CHECK_THROWS_AS(co_await y, baton::cancelled_error);
    });
  }

  TEST_CASE("a gathered task cancelled by someone else fails the gather but not its siblings") {
    run_task([]() -> task<> {
      baton::event go;
      auto victim = baton::spawn(sleep_forever());
      auto sibling = baton::spawn(value_when(5, go));
      auto g = baton::spawn(
          [](auto a, auto b) -> task<> { (void)co_await baton::gather(a, b); }(victim, sibling));
      REQUIRE(co_await baton_test::suspended_at(g, "task"));
      victim.cancel();
      CHECK_THROWS_AS(co_await g, baton::cancelled_error);
      CHECK_FALSE(sibling.cancelled());
      go.set();
      CHECK(co_await sibling == 5);
    });
  }

  TEST_CASE("gather of plain tasks spawns them, each in its own copy of the context") {
    run_task([]() -> task<> {
      (void)marker.set(1);
      auto child = [](int v) -> task<int> {
        CHECK(marker.get() == 1);  // a copy of the gathering task's context
        (void)marker.set(v * 10);  // not visible to the parent or siblings
        co_await baton::sleep(0ms);
        co_return v;
      };
      auto [a, b] = co_await baton::gather(child(1), child(2));
      CHECK(a == 1);
      CHECK(b == 2);
      CHECK(marker.get() == 1);
      auto named = child(3);
      auto [c] = co_await baton::gather(std::move(named));
      CHECK(c == 3);
    });
  }

  TEST_CASE("gather of plain tasks with return_exceptions returns the failure") {
    run_task([]() -> task<> {
      auto [ok, failed] =
          co_await baton::gather(baton::return_exceptions, value_after(5, 0ms), fail_after(0ms));
      CHECK(std::get<0>(ok) == 5);
      CHECK(std::holds_alternative<std::exception_ptr>(failed));
    });
  }

}  // TEST_SUITE
