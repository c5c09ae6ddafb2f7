// SPDX-License-Identifier: BSL-1.0
// wait_for(): the result in time, timeout_error and cancellation of the work after it
// (asyncio.wait_for).
#include <baton/wait_for.hpp>

#include <baton/baton.hpp>
#include <boost/asio/steady_timer.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/sample_tasks.hpp>
#include <support/suspended_at.hpp>

#include <chrono>
#include <stdexcept>

using namespace std::chrono_literals;
using baton::task;
using namespace baton_test;  // run_task and the sample tasks

TEST_SUITE("wait_for") {
  TEST_CASE("wait_for returns the result when the work finishes in time") {
    run_task([]() -> task<> { CHECK(co_await baton::wait_for(value_after(3, 0ms), 1h) == 3); });
  }

  TEST_CASE("wait_for throws timeout_error and cancels the work when time runs out") {
    run_task([]() -> task<> {
      bool inner_cancelled = false;
      auto work = [](bool& c) -> task<> {
        try {
          co_await sleep_forever();
        } catch (const baton::cancelled_error&) {
          c = true;
          throw;
        }
      };
      CHECK_THROWS_AS(co_await baton::wait_for(work(inner_cancelled), 1ms), baton::timeout_error);
      CHECK(inner_cancelled);
      co_await baton::sleep(0ms);  // and the task itself is not left cancelled
    });
  }

  TEST_CASE("wait_for on a handle cancels the awaited task on time-out") {
    run_task([]() -> task<> {
      auto h = baton::spawn(sleep_forever());
      CHECK_THROWS_AS(co_await baton::wait_for(h, 1ms), baton::timeout_error);
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
    });
  }

  TEST_CASE("wait_for shares the caller's context with the awaited task") {
    run_task([]() -> task<> {
      co_await baton::wait_for(
          []() -> task<> {
            (void)marker.set(5);
            co_return;
          }(),
          1h);
      CHECK(marker.get() == 5);
    });
  }

  TEST_CASE("cancelling a task in wait_for gives cancelled_error, not timeout_error") {
    run_task([]() -> task<> {
      auto h = baton::spawn([]() -> task<> { co_await baton::wait_for(sleep_forever(), 1h); }());
      REQUIRE(co_await baton_test::suspended_at(h, "sleep"));
      h.cancel();
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
    });
  }

  TEST_CASE("wait_for passes the work's own exception through") {
    run_task([]() -> task<> {
      CHECK_THROWS_AS(co_await baton::wait_for(fail_after(0ms), 1h), std::runtime_error);
    });
  }

  TEST_CASE("wait_for accepts an Asio operation and cancels it on time-out") {
    run_task([]() -> task<> {
      boost::asio::steady_timer t(baton::current_executor(), std::chrono::hours(1));
      CHECK_THROWS_AS(co_await baton::wait_for(t.async_wait(baton::use_task), 1ms),
                      baton::timeout_error);
    });
  }

  TEST_CASE("wait_for after a swallowed cancellation still reports timeout_error") {
    run_task([]() -> task<> {
      auto h = baton::spawn([]() -> task<bool> {
        try {
          co_await sleep_forever();
        } catch (const baton::cancelled_error&) {
        }
        try {
          co_await baton::wait_for(sleep_forever(), 1ms);
        } catch (const baton::timeout_error&) {
          co_return true;
        }
        co_return false;
      }());
      REQUIRE(co_await baton_test::suspended_at(h, "sleep"));
      h.cancel();
      CHECK(co_await h);
    });
  }

}  // TEST_SUITE
