// SPDX-License-Identifier: BSL-1.0
// semaphore and bounded_semaphore: permits, FIFO, bounds, cancellation, context, threads.
#include <baton/semaphore.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/settle.hpp>
#include <support/sync_helpers.hpp>

#include <atomic>
#include <chrono>
#include <vector>

using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;
using baton_test::settle;
using baton_test::spawn_each;

namespace {

/// Takes a permit, records id, keeps the permit.
task<> take_and_record(baton::semaphore& s, std::vector<int>& order, int id) {
  co_await s.acquire();
  order.push_back(id);
}

/// Acquires n permits one after another; none of them may have to wait.
task<bool> acquire_now(baton::semaphore& s, int n) {
  for (int i = 0; i < n; ++i) {
    if (s.locked()) co_return false;
    co_await s.acquire();
  }
  co_return true;
}

}  // namespace

TEST_SUITE("semaphore") {
  TEST_CASE(
      "a semaphore of n lets n tasks in at once, and locked() says when the next would wait") {
    run_task([]() -> task<> {
      baton::semaphore s(3);
      CHECK_FALSE(s.locked());
      CHECK(co_await acquire_now(s, 3));
      CHECK(s.locked());
      s.release();
      CHECK_FALSE(s.locked());
    });
  }

  TEST_CASE("the default semaphore has one permit") {
    run_task([]() -> task<> {
      baton::semaphore s;
      co_await s.acquire();
      CHECK(s.locked());
      s.release();
    });
  }

  TEST_CASE("release hands each permit to the oldest waiter") {
    run_task([]() -> task<> {
      baton::semaphore s(0);
      std::vector<int> order;
      auto hs = baton_test::spawn_n(5, [&](int id) { return take_and_record(s, order, id); });
      co_await settle();
      CHECK(order.empty());
      s.release();
      s.release();
      co_await settle();
      CHECK(order == std::vector<int>{0, 1});
      s.release();
      s.release();
      s.release();
      for (auto& h : hs) co_await h;
      CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
      CHECK(s.locked());
    });
  }

  TEST_CASE("a plain semaphore may be released above its initial value") {
    run_task([]() -> task<> {
      baton::semaphore s(1);
      s.release();
      CHECK(co_await acquire_now(s, 2));
    });
  }

  TEST_CASE("bounded_semaphore release above the initial value throws runtime_error") {
    run_task([]() -> task<> {
      baton::bounded_semaphore s(2);
      CHECK_THROWS_AS(s.release(), baton::runtime_error);
      co_await s.acquire();
      s.release();
      CHECK_THROWS_AS(s.release(), baton::runtime_error);
      CHECK(co_await acquire_now(s, 2));  // the failed releases added nothing
      CHECK(s.locked());
    });
  }

  TEST_CASE("a negative initial value throws runtime_error") {
    CHECK_THROWS_AS(baton::semaphore(-1), baton::runtime_error);
    CHECK_THROWS_AS(baton::bounded_semaphore(-1), baton::runtime_error);
  }

  TEST_CASE(
      "a waiter cancelled in the queue gets cancelled_error and the others still get permits") {
    run_task([]() -> task<> {
      baton::semaphore s(0);
      std::vector<int> order;
      auto [a, b, c] = spawn_each({1, 2, 3}, [&](int id) { return take_and_record(s, order, id); });
      co_await settle();
      CHECK(b.cancel());
      CHECK_THROWS_AS(co_await b, baton::cancelled_error);
      s.release();
      s.release();
      co_await a;
      co_await c;
      CHECK(order == std::vector<int>{1, 3});
      CHECK(s.locked());
    });
  }

  TEST_CASE("a waiter cancelled just after a permit was handed to it gives the permit back") {
    run_task([]() -> task<> {
      baton::bounded_semaphore s(1);
      std::vector<int> order;
      co_await s.acquire();
      auto [a, b] = spawn_each({1, 2}, [&](int id) { return take_and_record(s, order, id); });
      co_await settle();
      s.release();  // the permit goes to a, which has not run yet
      a.cancel();   // cancellation wins: a passes the permit to b
      CHECK_THROWS_AS(co_await a, baton::cancelled_error);
      co_await b;
      CHECK(order == std::vector<int>{2});
      s.release();  // b's permit: the count is back to its bound, nothing was lost or made up
      CHECK_FALSE(s.locked());
      CHECK_THROWS_AS(s.release(), baton::runtime_error);
    });
  }

  TEST_CASE("a lone waiter cancelled just after the hand-over returns the permit to the count") {
    run_task([]() -> task<> {
      baton::semaphore s(0);
      std::vector<int> order;
      auto a = baton::spawn(take_and_record(s, order, 1));
      co_await settle();
      s.release();
      a.cancel();
      CHECK_THROWS_AS(co_await a, baton::cancelled_error);
      CHECK_FALSE(s.locked());
      CHECK(co_await acquire_now(s, 1));
    });
  }

  TEST_CASE("the waiter's context is the same after acquiring") {
    run_task([]() -> task<> {
      baton::semaphore s(0);
      const auto seen = co_await baton_test::users_across_wait([&s] { return s.acquire(); },
                                                               "releaser", [&s] { s.release(); });
      CHECK(seen.waiter == "waiter");
      CHECK(seen.waker == "releaser");
    });
  }

  TEST_CASE("on a four-thread loop at most n tasks hold a permit at once") {
    struct result {
      int max_inside;
      int entries;
      bool locked_after;
    };
    const result r = run_task(
        []() -> task<result> {
          baton::bounded_semaphore s(3);
          std::atomic<int> inside{0};
          std::atomic<int> max_inside{0};
          std::atomic<int> entries{0};
          std::vector<baton::task_handle<>> hs;
          for (int i = 0; i < 48; ++i) {
            hs.push_back(baton::spawn([](baton::semaphore& sem, std::atomic<int>& in,
                                         std::atomic<int>& mx, std::atomic<int>& e) -> task<> {
              for (int k = 0; k < 200; ++k) {
                co_await sem.acquire();
                const int now = in.fetch_add(1) + 1;
                int seen = mx.load();
                while (now > seen && !mx.compare_exchange_weak(seen, now)) {
                }
                e.fetch_add(1);
                if (k % 5 == 0) co_await baton::sleep(0ms);
                in.fetch_sub(1);
                sem.release();
              }
            }(s, inside, max_inside, entries)));
          }
          for (auto& h : hs) co_await h;
          co_return result{max_inside.load(), entries.load(), s.locked()};
        },
        baton_test::four_threads());
    CHECK(r.max_inside >= 1);
    CHECK(r.max_inside <= 3);
    CHECK(r.entries == 48 * 200);
    CHECK_FALSE(r.locked_after);
  }

  TEST_CASE("on a four-thread loop cancelling waiters at random never loses a permit") {
    const bool all_back = run_task(
        []() -> task<bool> {
          baton::bounded_semaphore s(2);
          for (int round = 0; round < 200; ++round) {
            std::vector<baton::task_handle<>> hs;
            for (int i = 0; i < 16; ++i) {
              hs.push_back(baton::spawn([](baton::semaphore& sem) -> task<> {
                for (int k = 0; k < 4; ++k) {
                  co_await sem.acquire();
                  try {
                    co_await baton::sleep(0ms);  // hold it while others queue up
                  } catch (const baton::cancelled_error&) {
                    sem.release();
                    throw;
                  }
                  sem.release();
                }
              }(s)));
            }
            // Cancel every other one while permits are handed around: some are queued, some
            // were just handed a permit, some are done.
            co_await baton::sleep(0ms);
            baton_test::cancel_every_other(hs, round % 2);
            (void)co_await baton_test::join_all(hs);
          }
          // Both permits are free again: two acquires without waiting, and no third.
          co_return co_await acquire_now(s, 2) && s.locked();
        },
        baton_test::four_threads());
    CHECK(all_back);
  }

}  // TEST_SUITE
