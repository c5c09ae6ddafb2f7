// SPDX-License-Identifier: BSL-1.0
// Awaiting existing asio::awaitable code from tasks, context included.
#include <baton/asio_awaitable.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/suspended_at.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <stdexcept>
#include <string>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;

namespace {

baton::context_var<std::string> user("user");

asio::awaitable<std::string> legacy_lookup() {
  asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
  co_await t.async_wait(asio::use_awaitable);  // a real suspension inside Asio's machinery
  co_return "user is " + user.get("nobody");
}

asio::awaitable<void> legacy_set() {
  (void)user.set("set by asio");
  co_return;
}

asio::awaitable<int> legacy_fail() {
  throw std::runtime_error("legacy failed");
  co_return 0;
}

}  // namespace

TEST_SUITE("asio_awaitable") {
  TEST_CASE("a task awaits an asio::awaitable and gets its result, context included") {
    run_task([]() -> task<> {
      (void)user.set("ada");
      CHECK(co_await legacy_lookup() == "user is ada");
      CHECK(user.get() == "ada");
    });
  }

  TEST_CASE("a set inside the awaitable is visible to the task afterwards") {
    run_task([]() -> task<> {
      co_await legacy_set();
      CHECK(user.get() == "set by asio");
    });
  }

  TEST_CASE("the awaitable's exception is rethrown at the co_await") {
    run_task([]() -> task<> { CHECK_THROWS_AS(co_await legacy_fail(), std::runtime_error); });
  }

  TEST_CASE("cancelling the task stops the awaitable's pending operation") {
    run_task([]() -> task<> {
      auto h = baton::spawn([]() -> task<> {
        co_await []() -> asio::awaitable<void> {
          asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::hours(1));
          co_await t.async_wait(asio::use_awaitable);
        }();
      }());
      // In the awaitable (a task cancelled before its first step also ends cancelled).
      REQUIRE(co_await baton_test::suspended_at(h, "asio operation"));
      h.cancel();
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
    });
  }

}  // TEST_SUITE
