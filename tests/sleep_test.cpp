// SPDX-License-Identifier: BSL-1.0
// sleep(d) on the loop's timers: order, never early, cancellation at once (also when due),
// shutdown with sleepers, a multi-thread loop, wait_for's time-out on the same timers.
#include <baton/sleep.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/suspended_at.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;
using clock_type = std::chrono::steady_clock;

TEST_SUITE("sleep") {
  TEST_CASE("a sleep never ends before its duration") {
    run_task([]() -> task<> {
      for (auto d : {1ms, 3ms, 10ms}) {
        const auto start = clock_type::now();
        co_await baton::sleep(d);
        CHECK(clock_type::now() - start >= d);
      }
      const auto start = clock_type::now();
      co_await baton::sleep(300us);  // under a millisecond: kept to, not rounded
      CHECK(clock_type::now() - start >= 300us);
    });
  }

  TEST_CASE("a duration beyond the clock's range sleeps until cancelled, it does not wrap") {
    // hours::max() in nanoseconds overflows 64 bits: converted naively it wraps to a negative
    // or short duration and the task would wake at once.
    run_task([]() -> task<> {
      auto forever =
          baton::spawn([]() -> task<> { co_await baton::sleep(std::chrono::hours::max()); }());
      auto negative =
          baton::spawn([]() -> task<> { co_await baton::sleep(std::chrono::hours::min()); }());
      REQUIRE(co_await baton_test::suspended_at(forever, "sleep"));
      co_await negative;  // far in the past: a yield, never a wrap into the far future
      for (int i = 0; i < 100; ++i) co_await baton::sleep(0ms);
      CHECK_FALSE(forever.done());
      CHECK(forever.cancel());
      CHECK_THROWS_AS(co_await forever, baton::cancelled_error);
    });
  }

  TEST_CASE("sleepers started in any order wake in deadline order") {
    run_task([]() -> task<> {
      std::vector<int> woke;
      std::vector<baton::task_handle<>> hs;
      for (int ms : {40, 10, 30, 20, 50}) {
        hs.push_back(baton::spawn([](int m, std::vector<int>& out) -> task<> {
          co_await baton::sleep(std::chrono::milliseconds(m));
          out.push_back(m);
        }(ms, woke)));
      }
      for (auto& h : hs) co_await h;
      CHECK(woke == std::vector<int>{10, 20, 30, 40, 50});
    });
  }

  TEST_CASE("cancelling a sleeping task wakes it at once with cancelled_error") {
    run_task([]() -> task<> {
      auto h = baton::spawn([]() -> task<> { co_await baton::sleep(1h); }());
      REQUIRE(co_await baton_test::suspended_at(h, "sleep"));
      CHECK(h.cancel());
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);  // not an hour later
    });
  }

  TEST_CASE("a task cancelled when its sleep is already due gets cancelled_error") {
    run_task([]() -> task<> {
      auto h = baton::spawn([]() -> task<> { co_await baton::sleep(1ms); }());
      REQUIRE(co_await baton_test::suspended_at(h, "sleep"));
      // Keep the only loop thread busy past the deadline: the sleep is due, not yet fired.
      const auto until = clock_type::now() + 3ms;
      while (clock_type::now() < until) {
      }
      CHECK(h.cancel());
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
    });
  }

  TEST_CASE("of many sleepers, the cancelled ones end cancelled and the rest wake") {
    run_task([]() -> task<> {
      std::vector<baton::task_handle<>> hs;
      int woke = 0;
      for (int i = 0; i < 10000; ++i) {
        hs.push_back(baton::spawn([](int k, int& n) -> task<> {
          co_await baton::sleep(k % 10 == 0 ? std::chrono::milliseconds(1 + k % 7) : 1h);
          ++n;
        }(i, woke)));
      }
      // Every one asleep before any cancel (one cancelled before its first step would end
      // cancelled too, without its sleep ever being taken off the wheel).
      REQUIRE(co_await baton_test::suspended_at(hs.back(), "sleep"));
      for (std::size_t i = 0; i < hs.size(); ++i) {
        if (i % 10 != 0) hs[i].cancel();
      }
      int cancelled = 0;
      for (auto& h : hs) {
        try {
          co_await h;
        } catch (const baton::cancelled_error&) {
          ++cancelled;
        }
      }
      CHECK(woke == 1000);
      CHECK(cancelled == 9000);
    });
  }

  TEST_CASE("run() ends with sleepers still pending: they are cancelled, not waited for") {
    std::atomic<int> cancelled{0};
    run_task([&]() -> task<> {
      for (int i = 0; i < 100; ++i) {
        (void)baton::spawn([](std::atomic<int>& c) -> task<> {
          try {
            co_await baton::sleep(1h);
          } catch (const baton::cancelled_error&) {
            ++c;
            throw;
          }
        }(cancelled));
      }
      co_await baton::sleep(0ms);
    });
    CHECK(cancelled == 100);
  }

  TEST_CASE("sleepers on a multi-thread loop wake, and cancel from either thread") {
    baton::run_options o;
    o.threads = 2;
    run_task(
        []() -> task<> {
          std::atomic<int> woke{0};
          std::vector<baton::task_handle<>> sleepers;
          std::vector<baton::task_handle<>> forever;
          for (int i = 0; i < 200; ++i) {
            sleepers.push_back(baton::spawn([](int k, std::atomic<int>& n) -> task<> {
              const auto d = std::chrono::microseconds(100 * (k % 30));
              const auto start = clock_type::now();
              co_await baton::sleep(d);
              if (clock_type::now() - start >= d) ++n;
            }(i, woke)));
            forever.push_back(baton::spawn([]() -> task<> { co_await baton::sleep(1h); }()));
          }
          // Cancel the long sleepers from tasks that may run on either loop thread.
          std::vector<baton::task_handle<>> cancellers;
          for (auto& f : forever) {
            cancellers.push_back(baton::spawn([](baton::task_handle<> h) -> task<> {
              h.cancel();
              co_return;
            }(f)));
          }
          for (auto& c : cancellers) co_await c;
          for (auto& s : sleepers) co_await s;
          for (auto& f : forever) CHECK_THROWS_AS(co_await f, baton::cancelled_error);
          CHECK(woke == 200);
        },
        o);
  }

  TEST_CASE("wait_for's time-out fires on the loop's timers, and a finished wait leaves none") {
    run_task([]() -> task<> {
      CHECK_THROWS_AS(co_await baton::wait_for(baton::sleep(1h), 2ms), baton::timeout_error);
      for (int i = 0; i < 100; ++i) {
        co_await baton::wait_for(baton::sleep(0ms), 1h);  // its time-out is taken off again
      }
      // The hour-long time-outs were taken off: the loop ends now, not in an hour.
    });
  }
}
