// SPDX-License-Identifier: BSL-1.0
// lock: exclusion, FIFO fairness, guards, misuse, cancellation, context, threads.
#include <baton/lock.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/settle.hpp>
#include <support/sync_helpers.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;
using baton_test::settle;
using baton_test::user;

namespace {

/// Takes the lock, records id, releases it.
task<> take_and_record(baton::lock& l, std::vector<int>& order, int id) {
  co_await l.acquire();
  order.push_back(id);
  l.release();
}

/// Takes the lock, then queues N take_and_record waiters (ids 1 to N) behind it.
template <std::size_t N>
task<std::array<baton::task_handle<>, N>> hold_with_waiters(baton::lock& l,
                                                            std::vector<int>& order) {
  co_await l.acquire();
  std::array<baton::task_handle<>, N> hs;
  for (std::size_t i = 0; i < N; ++i) {
    hs[i] = baton::spawn(take_and_record(l, order, static_cast<int>(i) + 1));
  }
  co_await settle();
  co_return hs;
}

}  // namespace

TEST_SUITE("lock") {
  TEST_CASE("acquire of a free lock does not wait, and locked() reports the lock held") {
    run_task([]() -> task<> {
      baton::lock l;
      CHECK_FALSE(l.locked());
      co_await l.acquire();
      CHECK(l.locked());
      l.release();
      CHECK_FALSE(l.locked());
    });
  }

  TEST_CASE("release of a lock that is not locked throws runtime_error saying so") {
    baton::lock l;
    try {
      l.release();
      FAIL("release() of an unlocked lock did not throw");
    } catch (const baton::runtime_error& e) {
      CHECK(std::string(e.what()).find("not locked") != std::string::npos);
    }
  }

  TEST_CASE("waiters get the lock in the order they asked for it") {
    run_task([]() -> task<> {
      baton::lock l;
      std::vector<int> order;
      co_await l.acquire();
      auto hs = baton_test::spawn_n(6, [&](int id) { return take_and_record(l, order, id); });
      co_await settle();
      CHECK(order.empty());
      l.release();
      for (auto& h : hs) co_await h;
      CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5});
      CHECK_FALSE(l.locked());
    });
  }

  TEST_CASE("a task that releases and re-acquires at once queues behind the waiters") {
    run_task([]() -> task<> {
      baton::lock l;
      std::vector<int> order;
      auto [a, b] = co_await hold_with_waiters<2>(l, order);
      l.release();  // handed to a: the lock stays locked
      CHECK(l.locked());
      co_await l.acquire();  // behind a and b
      order.push_back(0);
      l.release();
      co_await a;
      co_await b;
      CHECK(order == std::vector<int>{1, 2, 0});
    });
  }

  TEST_CASE("scoped() holds the lock for the guard's lifetime, also when leaving by exception") {
    run_task([]() -> task<> {
      baton::lock l;
      {
        auto g = co_await l.scoped();
        CHECK(g.owns_lock());
        CHECK(l.locked());
      }
      CHECK_FALSE(l.locked());
      try {
        auto g = co_await l.scoped();
        throw std::runtime_error("inside");
      } catch (const std::runtime_error&) {
      }
      CHECK_FALSE(l.locked());
      auto g = co_await l.scoped();
      auto moved = std::move(g);
      CHECK_FALSE(g.owns_lock());
      moved.unlock();
      CHECK_FALSE(l.locked());
    });
  }

  TEST_CASE(
      "a waiter cancelled in the queue gets cancelled_error and the next waiter gets the lock") {
    run_task([]() -> task<> {
      baton::lock l;
      std::vector<int> order;
      auto [a, b, c] = co_await hold_with_waiters<3>(l, order);
      CHECK(a.cancel());
      CHECK_THROWS_AS(co_await a, baton::cancelled_error);
      CHECK(l.locked());  // still ours
      l.release();
      co_await b;
      co_await c;
      CHECK(order == std::vector<int>{2, 3});
      CHECK_FALSE(l.locked());
    });
  }

  TEST_CASE("a waiter cancelled just after the lock was handed to it passes the lock on") {
    run_task([]() -> task<> {
      baton::lock l;
      std::vector<int> order;
      auto [a, b] = co_await hold_with_waiters<2>(l, order);
      l.release();  // a owns the lock now, but has not run yet
      a.cancel();   // cancellation wins: a must give the lock to b
      CHECK_THROWS_AS(co_await a, baton::cancelled_error);
      co_await b;
      CHECK(order == std::vector<int>{2});
      CHECK_FALSE(l.locked());
    });
  }

  TEST_CASE("a lone waiter cancelled just after the hand-over leaves the lock free") {
    run_task([]() -> task<> {
      baton::lock l;
      std::vector<int> order;
      auto [a] = co_await hold_with_waiters<1>(l, order);
      l.release();
      a.cancel();
      CHECK_THROWS_AS(co_await a, baton::cancelled_error);
      CHECK_FALSE(l.locked());
      CHECK(order.empty());
    });
  }

  TEST_CASE("a task already cancelled gets cancelled_error instead of waiting for a held lock") {
    run_task([]() -> task<> {
      baton::lock l;
      co_await l.acquire();
      auto h = baton_test::spawn_cancelled_before([&l] { return l.acquire(); });
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
      l.release();
      CHECK_FALSE(l.locked());
    });
  }

  TEST_CASE("the waiter's context is the same after acquiring") {
    run_task([]() -> task<> {
      baton::lock l;
      co_await l.acquire();
      const auto seen = co_await baton_test::users_across_wait([&l] { return l.scoped(); },
                                                               "holder", [&l] { l.release(); });
      CHECK(seen.waiter == "waiter");
      CHECK(seen.waker == "holder");
    });
  }

  TEST_CASE("on a four-thread loop the lock keeps a plain counter exact") {
    constexpr int tasks = 64;
    constexpr int rounds = 500;
    struct result {
      long counter;
      int context_ok;
      bool locked;
    };
    const result r = run_task(
        []() -> task<result> {
          baton::lock l;
          long counter = 0;  // plain: only the lock protects it
          std::atomic<int> context_ok{0};
          std::vector<baton::task_handle<>> hs;
          for (int i = 0; i < tasks; ++i) {
            hs.push_back(
                baton::spawn([](baton::lock& lk, long& c, std::atomic<int>& ok, int id) -> task<> {
                  (void)user.set(std::to_string(id));
                  for (int k = 0; k < rounds; ++k) {
                    auto g = co_await lk.scoped();
                    const long seen = c;
                    if (k % 7 == 0) co_await baton::sleep(0ms);  // hold it across a suspension
                    c = seen + 1;
                  }
                  if (user.get() == std::to_string(id)) ok.fetch_add(1, std::memory_order_relaxed);
                }(l, counter, context_ok, i)));
          }
          for (auto& h : hs) co_await h;
          co_return result{counter, context_ok.load(), l.locked()};
        },
        baton_test::four_threads());
    CHECK(r.counter == long{tasks} * rounds);
    CHECK(r.context_ok == tasks);
    CHECK_FALSE(r.locked);
  }

  TEST_CASE("on a four-thread loop cancelling waiters at random never loses the lock") {
    struct result {
      long counter;
      long entries;
      bool locked_after;
    };
    const result r = run_task(
        []() -> task<result> {
          baton::lock l;
          long counter = 0;  // plain: only the lock protects it
          std::atomic<long> entries{0};
          for (int round = 0; round < 200; ++round) {
            std::vector<baton::task_handle<>> hs;
            for (int i = 0; i < 16; ++i) {
              hs.push_back(
                  baton::spawn([](baton::lock& lk, long& c, std::atomic<long>& e) -> task<> {
                    for (int k = 0; k < 4; ++k) {
                      auto g = co_await lk.scoped();  // a cancelled sleep must release it too
                      const long seen = c;
                      co_await baton::sleep(0ms);  // hold it while others queue up
                      c = seen + 1;
                      e.fetch_add(1, std::memory_order_relaxed);
                    }
                  }(l, counter, entries)));
            }
            // Cancel every other one while the lock is being handed around: some are queued,
            // some were just handed the lock, some are done.
            co_await baton::sleep(0ms);
            baton_test::cancel_every_other(hs, round % 2);
            (void)co_await baton_test::join_all(hs);
          }
          const bool locked_after = l.locked();
          co_await l.acquire();  // would hang if the lock had been lost
          l.release();
          co_return result{counter, entries.load(), locked_after};
        },
        baton_test::four_threads());
    CHECK(r.counter == r.entries);
    CHECK(r.counter >= 200 * 8 * 4);  // the tasks nobody cancelled all finished
    CHECK_FALSE(r.locked_after);
  }

}  // TEST_SUITE
