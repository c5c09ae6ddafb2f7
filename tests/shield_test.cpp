// SPDX-License-Identifier: BSL-1.0
// shield(): the awaited task survives its awaiter's cancellation (asyncio.shield).
#include <baton/shield.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/sample_tasks.hpp>
#include <support/suspended_at.hpp>

#include <chrono>

using namespace std::chrono_literals;
using baton::task;
using namespace baton_test;  // run_task and the sample tasks

TEST_SUITE("shield") {
  TEST_CASE("a shielded task survives the cancellation of its awaiter") {
    run_task([]() -> task<> {
      baton::event go;
      auto inner = baton::spawn(value_when(9, go));
      auto outer = baton::spawn([](baton::task_handle<int> h) -> task<int> {
        co_return co_await baton::shield(h);
      }(inner));
      REQUIRE(co_await baton_test::suspended_at(outer, "shield"));
      outer.cancel();
      CHECK_THROWS_AS(co_await outer, baton::cancelled_error);
      CHECK_FALSE(inner.done());
      go.set();
      CHECK(co_await inner == 9);
      CHECK_FALSE(inner.cancelled());
    });
  }

  TEST_CASE("shield passes the result through when nobody cancels") {
    run_task(
        []() -> task<> { CHECK(co_await baton::shield(baton::spawn(value_after(4, 0ms))) == 4); });
  }

}  // TEST_SUITE
