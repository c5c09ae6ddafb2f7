// SPDX-License-Identifier: BSL-1.0
// condition: wait/notify under the lock, predicates, misuse, cancellation, context, threads.
#include <baton/condition.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/settle.hpp>
#include <support/sync_helpers.hpp>

#include <chrono>
#include <deque>
#include <vector>

using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;
using baton_test::settle;

namespace {

/// Waits once under the lock, then records id and whether it held the lock on return.
task<> wait_and_record(baton::condition& cv, std::vector<int>& order, int id) {
  auto g = co_await cv.scoped();
  co_await cv.wait();
  if (cv.locked()) order.push_back(id);
}

/// Waits once under the lock; if cancelled, notes in `held` whether it held the lock again.
task<> wait_noting_lock_if_cancelled(baton::condition& cv, bool& held) {
  auto g = co_await cv.scoped();
  try {
    co_await cv.wait();
  } catch (const baton::cancelled_error&) {
    held = cv.locked();
    throw;
  }
}

/// Spawns wait_noting_lock_if_cancelled, lets it wait, then takes the lock and cancels the
/// waiter: it has to wait for the lock before it can throw.
task<baton::task_handle<>> cancel_waiter_holding_lock(baton::condition& cv, bool& held) {
  auto h = baton::spawn(wait_noting_lock_if_cancelled(cv, held));
  co_await settle();
  co_await cv.acquire();
  h.cancel();
  co_return h;
}

/// Waits once under the lock (the waiter of the context test).
task<> wait_once(baton::condition& cv) {
  auto g = co_await cv.scoped();
  co_await cv.wait();
}

/// Notifies one waiter, holding the lock while it does.
task<> notify_one(baton::condition& cv) {
  auto g = co_await cv.scoped();
  cv.notify();
}

}  // namespace

TEST_SUITE("condition") {
  TEST_CASE("wait without holding the lock throws runtime_error") {
    run_task([]() -> task<> {
      baton::condition cv;
      CHECK_THROWS_AS(co_await cv.wait(), baton::runtime_error);
      CHECK_FALSE(cv.locked());
    });
  }

  TEST_CASE("notify without holding the lock throws runtime_error") {
    baton::condition cv;
    CHECK_THROWS_AS(cv.notify(), baton::runtime_error);
    CHECK_THROWS_AS(cv.notify_all(), baton::runtime_error);
  }

  TEST_CASE("wait releases the lock while waiting and holds it again when it returns") {
    run_task([]() -> task<> {
      baton::condition cv;
      std::vector<int> order;
      auto h = baton::spawn(wait_and_record(cv, order, 1));
      co_await settle();
      CHECK_FALSE(cv.locked());  // the waiter released it
      {
        auto g = co_await cv.scoped();
        cv.notify();
        co_await settle();
        CHECK(order.empty());  // woken, but the lock is still ours
      }
      co_await h;
      CHECK(order == std::vector<int>{1});
      CHECK_FALSE(cv.locked());
    });
  }

  TEST_CASE("notify wakes the oldest waiter, notify(n) the n oldest, notify_all the rest") {
    run_task([]() -> task<> {
      baton::condition cv;
      std::vector<int> order;
      auto hs = baton_test::spawn_n(6, [&](int id) { return wait_and_record(cv, order, id); });
      co_await settle();
      co_await notify_one(cv);
      co_await settle();
      CHECK(order == std::vector<int>{0});
      {
        auto g = co_await cv.scoped();
        cv.notify(2);
      }
      co_await settle();
      CHECK(order == std::vector<int>{0, 1, 2});
      {
        auto g = co_await cv.scoped();
        cv.notify_all();
      }
      for (auto& h : hs) co_await h;
      CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5});
    });
  }

  TEST_CASE("notify with nobody waiting is not remembered") {
    run_task([]() -> task<> {
      baton::condition cv;
      {
        auto g = co_await cv.scoped();
        cv.notify_all();
      }
      std::vector<int> order;
      auto h = baton::spawn(wait_and_record(cv, order, 1));
      co_await settle();
      CHECK_FALSE(h.done());
      co_await notify_one(cv);
      co_await h;
      CHECK(order == std::vector<int>{1});
    });
  }

  TEST_CASE("wait_for returns the predicate's value once it holds, checking it under the lock") {
    run_task([]() -> task<> {
      baton::condition cv;
      int value = 0;
      bool always_locked = true;
      auto h = baton::spawn([](baton::condition& c, int& v, bool& locked) -> task<int> {
        auto g = co_await c.scoped();
        co_return co_await c.wait_for([&]() -> int {
          locked = locked && c.locked();
          return v >= 3 ? v : 0;
        });
      }(cv, value, always_locked));
      for (int i = 1; i <= 3; ++i) {
        co_await settle();
        auto g = co_await cv.scoped();
        value = i;
        cv.notify();
      }
      CHECK(co_await h == 3);
      CHECK(always_locked);
    });
  }

  TEST_CASE("wait_for with a predicate already true does not wait") {
    run_task([]() -> task<> {
      baton::condition cv;
      auto g = co_await cv.scoped();
      CHECK(co_await cv.wait_for([] { return true; }));
      CHECK(cv.locked());
    });
  }

  TEST_CASE("a cancelled waiter gets cancelled_error with the lock held again") {
    run_task([]() -> task<> {
      baton::condition cv;
      bool held_when_cancelled = false;
      auto h = co_await cancel_waiter_holding_lock(cv, held_when_cancelled);
      co_await settle();
      CHECK_FALSE(h.done());
      cv.release();
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
      CHECK(held_when_cancelled);
      CHECK_FALSE(cv.locked());  // its guard released it
    });
  }

  TEST_CASE("a waiter cancelled again while re-acquiring still returns with the lock") {
    run_task([]() -> task<> {
      baton::condition cv;
      bool held_when_cancelled = false;
      auto h = co_await cancel_waiter_holding_lock(cv, held_when_cancelled);
      co_await settle();  // now queued for the lock
      h.cancel();         // absorbed: the lock is re-acquired anyway
      co_await settle();
      cv.release();
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
      CHECK(held_when_cancelled);
      CHECK_FALSE(cv.locked());
    });
  }

  TEST_CASE("a waiter cancelled right after notify picked it passes the notification on") {
    run_task([]() -> task<> {
      baton::condition cv;
      std::vector<int> order;
      auto [a, b] =
          baton_test::spawn_each({1, 2}, [&](int id) { return wait_and_record(cv, order, id); });
      co_await settle();
      {
        auto g = co_await cv.scoped();
        cv.notify();  // picks a ...
        a.cancel();   // ... which is cancelled before it runs: b gets the notification
      }
      CHECK_THROWS_AS(co_await a, baton::cancelled_error);
      co_await b;
      CHECK(order == std::vector<int>{2});
    });
  }

  TEST_CASE("two conditions can share one lock given to them") {
    run_task([]() -> task<> {
      baton::lock l;
      baton::condition not_empty(l);
      baton::condition not_full(l);
      CHECK(&not_empty.underlying_lock() == &l);
      std::deque<int> items;
      auto consumer = baton::spawn(
          [](baton::condition& ne, baton::condition& nf, std::deque<int>& q) -> task<int> {
            int sum = 0;
            for (int i = 0; i < 10; ++i) {
              auto g = co_await ne.scoped();
              co_await ne.wait_for([&] { return !q.empty(); });
              sum += q.front();
              q.pop_front();
              nf.notify();
            }
            co_return sum;
          }(not_empty, not_full, items));
      for (int i = 1; i <= 10; ++i) {
        auto g = co_await l.scoped();
        co_await not_full.wait_for([&] { return items.size() < 2; });
        items.push_back(i);
        not_empty.notify();
      }
      CHECK(co_await consumer == 55);
    });
  }

  TEST_CASE("the waiter's context is the same after the wait") {
    run_task([]() -> task<> {
      baton::condition cv;
      const auto seen = co_await baton_test::users_across_wait(
          [&cv] { return wait_once(cv); }, "notifier", [&cv] { return notify_one(cv); });
      CHECK(seen.waiter == "waiter");
      CHECK(seen.waker == "notifier");
    });
  }

  TEST_CASE("on a four-thread loop a condition-guarded buffer delivers every item exactly once") {
    constexpr int producers = 4;
    constexpr int consumers = 4;
    constexpr int per_producer = 1000;
    const std::vector<int> received = run_task(
        []() -> task<std::vector<int>> {
          baton::condition cv;
          std::deque<int> buffer;  // guarded by cv's lock
          int producers_left = producers;
          baton_test::collector out;
          std::vector<baton::task_handle<>> hs;
          for (int p = 0; p < producers; ++p) {
            hs.push_back(baton::spawn(
                [](baton::condition& c, std::deque<int>& b, int& left, int first) -> task<> {
                  for (int i = 0; i < per_producer; ++i) {
                    auto g = co_await c.scoped();
                    co_await c.wait_for([&] { return b.size() < 8; });
                    b.push_back(first + i);
                    c.notify_all();
                  }
                  auto g = co_await c.scoped();
                  --left;
                  c.notify_all();
                }(cv, buffer, producers_left, p * per_producer)));
          }
          for (int k = 0; k < consumers; ++k) {
            hs.push_back(baton::spawn([](baton::condition& c, std::deque<int>& b, int& left,
                                         baton_test::collector& o) -> task<> {
              for (;;) {
                auto g = co_await c.scoped();
                co_await c.wait_for([&] { return !b.empty() || left == 0; });
                if (b.empty()) co_return;
                const int v = b.front();
                b.pop_front();
                c.notify_all();
                g.unlock();
                o.add(v);
              }
            }(cv, buffer, producers_left, out)));
          }
          for (auto& h : hs) co_await h;
          co_return out.take();
        },
        baton_test::four_threads());
    CHECK(baton_test::sorted(received) == baton_test::numbers_below(producers * per_producer));
  }

  TEST_CASE("on a four-thread loop cancelling notified waiters never strands the others") {
    struct result {
      int finished;
      int cancelled;
      int tokens_left;
    };
    const result r = run_task(
        []() -> task<result> {
          baton::condition cv;
          int tokens = 0;  // guarded by cv's lock
          std::vector<baton::task_handle<>> hs;
          for (int i = 0; i < 16; ++i) {
            hs.push_back(baton::spawn([](baton::condition& c, int& t) -> task<> {
              for (int k = 0; k < 4; ++k) {
                auto g = co_await c.scoped();
                co_await c.wait_for([&] { return t > 0; });
                --t;
              }
            }(cv, tokens)));
          }
          // One token at a time, each with a single notify(): a notification swallowed by a
          // cancelled waiter would leave a token and a waiter stranded (a hang).
          for (int i = 0; i < 64; ++i) {
            {
              auto g = co_await cv.scoped();
              ++tokens;
              cv.notify();
            }
            if (i % 4 == 1) hs[static_cast<std::size_t>(i / 4)].cancel();
            co_await baton::sleep(0ms);
          }
          const baton_test::joined j = co_await baton_test::join_all(hs);
          auto g = co_await cv.scoped();
          co_return result{j.finished, j.cancelled, tokens};
        },
        baton_test::four_threads());
    CHECK(r.finished + r.cancelled == 16);
    // Finished waiters took 4 tokens each, cancelled ones 0 to 3.
    CHECK(r.tokens_left <= 64 - 4 * r.finished);
    CHECK(r.tokens_left >= 64 - 4 * r.finished - 3 * r.cancelled);
  }

}  // TEST_SUITE
