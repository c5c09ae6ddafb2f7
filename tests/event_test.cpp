// SPDX-License-Identifier: BSL-1.0
// event: waiting, waking every waiter, clearing, cancellation, context, threads.
#include <baton/event.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/settle.hpp>
#include <support/sync_helpers.hpp>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using baton::task;
using baton_test::run_task;
using baton_test::settle;
using baton_test::spawn_each;
using baton_test::user;

namespace {

task<> wait_and_record(baton::event& ev, std::vector<int>& order, int id) {
  co_await ev.wait();
  order.push_back(id);
}

/// Sets `user` to its id, waits, and counts itself in `good` if `user` still holds its id.
task<> wait_keeping_context(baton::event& ev, std::atomic<int>& good, int id) {
  (void)user.set(std::to_string(id));
  co_await ev.wait();
  if (user.get() == std::to_string(id)) good.fetch_add(1, std::memory_order_relaxed);
}

/// Waits on a, then b, then takes l, recording each step in stage.
task<> wait_on_three(baton::event& a, baton::event& b, baton::lock& l, int& stage) {
  co_await a.wait();
  stage = 1;
  co_await b.wait();
  stage = 2;
  co_await l.acquire();
  stage = 3;
  l.release();
}

}  // namespace

TEST_SUITE("event") {
  TEST_CASE("a new event is not set, set() sets it and clear() resets it") {
    baton::event ev;
    CHECK_FALSE(ev.is_set());
    ev.set();
    CHECK(ev.is_set());
    ev.set();  // idempotent
    CHECK(ev.is_set());
    ev.clear();
    CHECK_FALSE(ev.is_set());
  }

  TEST_CASE("wait returns at once when the event is already set") {
    run_task([]() -> task<> {
      baton::event ev;
      ev.set();
      co_await ev.wait();
      co_await ev.wait();
      CHECK(ev.is_set());
    });
  }

  TEST_CASE("wait blocks until set, and set wakes every waiter in arrival order") {
    run_task([]() -> task<> {
      baton::event ev;
      std::vector<int> order;
      auto hs = baton_test::spawn_n(5, [&](int id) { return wait_and_record(ev, order, id); });
      co_await settle();
      CHECK(order.empty());
      for (auto& h : hs) CHECK_FALSE(h.done());
      ev.set();
      for (auto& h : hs) co_await h;
      CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
    });
  }

  TEST_CASE("after clear() a wait blocks until the next set()") {
    run_task([]() -> task<> {
      baton::event ev;
      ev.set();
      ev.clear();
      std::vector<int> order;
      auto h = baton::spawn(wait_and_record(ev, order, 1));
      co_await settle();
      CHECK_FALSE(h.done());
      ev.set();
      co_await h;
      CHECK(order == std::vector<int>{1});
    });
  }

  TEST_CASE("a waiter woken by set() returns even if the event is cleared before it runs") {
    run_task([]() -> task<> {
      baton::event ev;
      std::vector<int> order;
      auto h = baton::spawn(wait_and_record(ev, order, 1));
      co_await settle();
      ev.set();
      ev.clear();
      co_await h;
      CHECK(order == std::vector<int>{1});
    });
  }

  TEST_CASE("a cancelled waiter gets cancelled_error and the other waiters are still woken") {
    run_task([]() -> task<> {
      baton::event ev;
      std::vector<int> order;
      auto [a, b, c] =
          spawn_each({1, 2, 3}, [&](int id) { return wait_and_record(ev, order, id); });
      co_await settle();
      CHECK(b.cancel());
      CHECK_THROWS_AS(co_await b, baton::cancelled_error);
      CHECK(b.cancelled());
      CHECK_FALSE(a.done());
      ev.set();
      co_await a;
      co_await c;
      CHECK(order == std::vector<int>{1, 3});
    });
  }

  TEST_CASE(
      "a waiter cancelled right after set() woke it gets cancelled_error; the event stays set") {
    run_task([]() -> task<> {
      baton::event ev;
      std::vector<int> order;
      auto [a, b] = spawn_each({1, 2}, [&](int id) { return wait_and_record(ev, order, id); });
      co_await settle();
      ev.set();    // both are woken (scheduled) ...
      a.cancel();  // ... and a is cancelled before it runs
      CHECK_THROWS_AS(co_await a, baton::cancelled_error);
      co_await b;
      CHECK(order == std::vector<int>{2});
      CHECK(ev.is_set());
    });
  }

  TEST_CASE("a task already cancelled gets cancelled_error instead of waiting") {
    run_task([]() -> task<> {
      baton::event ev;
      std::vector<int> order;
      auto h = baton_test::spawn_cancelled_before(
          [&ev, &order] { return wait_and_record(ev, order, 1); });
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
      CHECK(order.empty());  // it never got past the wait
    });
  }

  TEST_CASE("the waiter's context is the same after the wait") {
    run_task([]() -> task<> {
      baton::event ev;
      const auto seen = co_await baton_test::users_across_wait([&ev] { return ev.wait(); },
                                                               "setter", [&ev] { ev.set(); });
      CHECK(seen.waiter == "waiter");
      CHECK(seen.waker == "setter");
    });
  }

  TEST_CASE("set() from a thread outside the loop wakes a waiter") {
    run_task([]() -> task<> {
      baton::event ev;
      auto h = baton::spawn([](baton::event& e) -> task<> { co_await e.wait(); }(ev));
      co_await settle();
      REQUIRE_FALSE(h.done());
      std::thread setter([&ev] { ev.set(); });
      co_await h;
      setter.join();
      CHECK(h.done());
    });
  }

  TEST_CASE("on a four-thread loop every waiter wakes, in its own context") {
    const int ok = run_task(
        []() -> task<int> {
          baton::event ev;
          std::atomic<int> good{0};
          auto hs =
              baton_test::spawn_n(200, [&](int id) { return wait_keeping_context(ev, good, id); });
          co_await settle();
          ev.set();
          for (auto& h : hs) co_await h;
          co_return good.load();
        },
        baton_test::four_threads());
    CHECK(ok == 200);
  }

  TEST_CASE("a wait keeps only the event's address in the frame; the links are in the task") {
    // The waiting frame holds the awaiter for as long as the task waits: one pointer.
    static_assert(sizeof(baton::event::wait_awaitable) == sizeof(void*));
    run_task([]() -> task<> {
      baton::event first;
      baton::event second;
      baton::lock l;
      co_await l.acquire();  // held: the task below queues on the lock too
      int stage = 0;
      // One task waits on three primitives in turn: its one set of links serves each wait.
      auto h = baton::spawn(wait_on_three(first, second, l, stage));
      co_await settle();
      CHECK(stage == 0);
      first.set();
      co_await settle();
      CHECK(stage == 1);
      second.set();
      co_await settle();
      CHECK(stage == 2);
      l.release();
      co_await h;
      CHECK(stage == 3);
      CHECK_FALSE(l.locked());
    });
  }

  TEST_CASE("a task that fails right after a wait reports its own failure, in every way out") {
    // While queued, the task's failure slot is its wait-list back link: after the wake-up it
    // must be an empty failure again, whether the task was granted, cancelled or woken in a
    // batch behind others.
    run_task([]() -> task<> {
      baton::event ev;
      std::vector<baton::task_handle<int>> hs;
      for (int i = 0; i < 3; ++i) {
        hs.push_back(baton::spawn([](baton::event& e, int k) -> task<int> {
          co_await e.wait();
          if (k == 1) co_return 1;         // succeeds between two failing neighbours
          co_await [](int kk) -> task<> {  // a nested frame fails and parks its exception
            throw std::runtime_error("after the wait " + std::to_string(kk));
          }(k);
          co_return -1;
        }(ev, i)));
      }
      auto cancelled = baton::spawn([](baton::event& e) -> task<int> {
        try {
          co_await e.wait();
        } catch (const baton::cancelled_error&) {
          throw std::logic_error("cleaned up and failed");
        }
        co_return 0;
      }(ev));
      co_await settle();  // all four queued on the event
      cancelled.cancel();
      ev.set();
      CHECK_THROWS_WITH_AS(co_await hs[0], "after the wait 0", std::runtime_error);
      CHECK(co_await hs[1] == 1);
      CHECK_THROWS_WITH_AS(co_await hs[2], "after the wait 2", std::runtime_error);
      CHECK_THROWS_WITH_AS(co_await cancelled, "cleaned up and failed", std::logic_error);
      CHECK_FALSE(cancelled.cancelled());
    });
  }

}  // TEST_SUITE
