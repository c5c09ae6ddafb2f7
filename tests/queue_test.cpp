// SPDX-License-Identifier: BSL-1.0
// queue<T>: FIFO, bounds, waiting getters and putters, cancellation, join, context, threads.
#include <baton/queue.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/counted.hpp>
#include <support/run_test.hpp>
#include <support/settle.hpp>
#include <support/sync_helpers.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;
using baton_test::settle;
using baton_test::spawn_each;
using baton_test::user;

namespace {

task<> get_and_record(baton::queue<int>& q, std::vector<int>& got) {
  got.push_back(co_await q.get());
}

/// Spawns N get_and_record getters, oldest first, and lets them wait for items.
template <std::size_t N>
task<std::array<baton::task_handle<>, N>> waiting_getters(baton::queue<int>& q,
                                                          std::vector<int>& got) {
  std::array<baton::task_handle<>, N> hs;
  for (auto& h : hs) h = baton::spawn(get_and_record(q, got));
  co_await settle();
  co_return hs;
}

task<> put_and_record(baton::queue<int>& q, std::vector<int>& done, int v) {
  co_await q.put(v);
  done.push_back(v);
}

std::vector<int> drain(baton::queue<int>& q) {
  std::vector<int> out;
  while (auto v = q.try_get()) out.push_back(*v);
  return out;
}

/// Puts first, first + 1, ..., first + n - 1.
task<> put_range(baton::queue<int>& q, int first, int n) {
  for (int i = 0; i < n; ++i) co_await q.put(first + i);
}

/// Gets items into `out` until it gets a negative one (a stop sign).
task<> get_until_stop(baton::queue<int>& q, baton_test::collector& out) {
  for (;;) {
    const int v = co_await q.get();
    if (v < 0) co_return;
    out.add(v);
  }
}

}  // namespace

TEST_SUITE("queue") {
  static_assert(!std::is_copy_constructible_v<baton::queue<int>>);

  TEST_CASE("items come out in the order they were put") {
    run_task([]() -> task<> {
      baton::queue<int> q;
      for (int i = 0; i < 5; ++i) co_await q.put(i);
      std::vector<int> got;
      for (int i = 0; i < 5; ++i) got.push_back(co_await q.get());
      CHECK(got == std::vector<int>{0, 1, 2, 3, 4});
      CHECK(q.empty());
    });
  }

  TEST_CASE("size, empty, full and maxsize report the state; maxsize 0 is unbounded") {
    run_task([]() -> task<> {
      baton::queue<int> bounded(2);
      CHECK(bounded.maxsize() == 2);
      CHECK(bounded.empty());
      CHECK_FALSE(bounded.full());
      co_await bounded.put(1);
      CHECK(bounded.size() == 1);
      co_await bounded.put(2);
      CHECK(bounded.full());
      baton::queue<int> unbounded;
      CHECK(unbounded.maxsize() == 0);
      for (int i = 0; i < 1000; ++i) co_await unbounded.put(i);
      CHECK(unbounded.size() == 1000);
      CHECK_FALSE(unbounded.full());
    });
  }

  TEST_CASE("try_put fails on a full queue and leaves the value alone; try_get is empty then") {
    baton::queue<std::string> q(1);
    CHECK_FALSE(q.try_get().has_value());
    std::string a = "first";
    CHECK(q.try_put(std::move(a)));
    std::string b = "second";
    CHECK_FALSE(q.try_put(std::move(b)));
    CHECK(b == "second");
    const std::string c = "third";
    CHECK_FALSE(q.try_put(c));
    CHECK(q.try_get() == std::optional<std::string>("first"));
    CHECK(q.try_put(c));
    CHECK(q.try_get() == std::optional<std::string>("third"));
  }

  TEST_CASE("get waits until an item is put, and waiting getters are served oldest first") {
    run_task([]() -> task<> {
      baton::queue<int> q;
      std::vector<int> got;
      auto hs = co_await waiting_getters<3>(q, got);
      CHECK(got.empty());
      co_await q.put(10);
      co_await settle();
      CHECK(got == std::vector<int>{10});
      CHECK(q.try_put(11));
      CHECK(q.try_put(12));
      for (auto& h : hs) co_await h;
      CHECK(got == std::vector<int>{10, 11, 12});
      CHECK(q.empty());
    });
  }

  TEST_CASE("put on a full bounded queue waits until a get makes room, putters oldest first") {
    run_task([]() -> task<> {
      baton::queue<int> q(2);
      co_await q.put(0);
      co_await q.put(1);
      std::vector<int> done;
      auto [a, b] = spawn_each({2, 3}, [&](int v) { return put_and_record(q, done, v); });
      co_await settle();
      CHECK(done.empty());
      CHECK(q.size() == 2);
      CHECK(co_await q.get() == 0);
      co_await settle();
      CHECK(done == std::vector<int>{2});
      CHECK(q.full());
      CHECK(q.try_get() == std::optional<int>(1));
      co_await a;
      co_await b;
      CHECK(done == std::vector<int>{2, 3});
      CHECK(drain(q) == std::vector<int>{2, 3});
    });
  }

  TEST_CASE(
      "a cancelled waiting getter gets cancelled_error and the item goes to the next getter") {
    run_task([]() -> task<> {
      baton::queue<int> q;
      std::vector<int> got;
      auto [a, b] = co_await waiting_getters<2>(q, got);
      CHECK(a.cancel());
      CHECK_THROWS_AS(co_await a, baton::cancelled_error);
      co_await q.put(7);
      co_await b;
      CHECK(got == std::vector<int>{7});
      CHECK(q.empty());
    });
  }

  TEST_CASE("a getter cancelled just after an item was handed to it puts the item back in front") {
    run_task([]() -> task<> {
      baton::queue<int> q;
      std::vector<int> got;
      auto [a] = co_await waiting_getters<1>(q, got);
      co_await q.put(1);  // handed straight to a, which has not run yet
      co_await q.put(2);  // queued behind it
      a.cancel();         // cancellation wins: 1 goes back to the front
      CHECK_THROWS_AS(co_await a, baton::cancelled_error);
      CHECK(got.empty());
      CHECK(drain(q) == std::vector<int>{1, 2});
    });
  }

  TEST_CASE("a getter cancelled just after the hand-over passes the item to the next getter") {
    run_task([]() -> task<> {
      baton::queue<int> q;
      std::vector<int> got;
      auto [a, b] = co_await waiting_getters<2>(q, got);
      CHECK(q.try_put(1));  // to a
      a.cancel();
      CHECK_THROWS_AS(co_await a, baton::cancelled_error);
      co_await b;
      CHECK(got == std::vector<int>{1});
      CHECK(q.empty());
    });
  }

  TEST_CASE("a cancelled waiting putter gets cancelled_error and its item is not put") {
    run_task([]() -> task<> {
      baton::queue<int> q(1);
      co_await q.put(0);
      std::vector<int> done;
      auto [a, b] = spawn_each({1, 2}, [&](int v) { return put_and_record(q, done, v); });
      co_await settle();
      CHECK(a.cancel());
      CHECK_THROWS_AS(co_await a, baton::cancelled_error);
      CHECK(co_await q.get() == 0);
      co_await b;
      CHECK(done == std::vector<int>{2});
      CHECK(drain(q) == std::vector<int>{2});
    });
  }

  TEST_CASE(
      "a putter cancelled after its item went in has put it, and is cancelled at its next wait") {
    run_task([]() -> task<> {
      baton::queue<int> q(1);
      co_await q.put(0);
      bool put_returned = false;
      auto a = baton::spawn([](baton::queue<int>& qu, bool& returned) -> task<> {
        co_await qu.put(1);
        returned = true;
        co_await baton::sleep(std::chrono::hours(1));  // the pending cancellation lands here
      }(q, put_returned));
      co_await settle();
      CHECK(q.try_get() == std::optional<int>(0));  // 1 moves into the freed slot
      a.cancel();
      CHECK_THROWS_AS(co_await a, baton::cancelled_error);
      CHECK(put_returned);
      CHECK(drain(q) == std::vector<int>{1});
    });
  }

  TEST_CASE("a getter with a cancellation pending gets cancelled_error instead of waiting") {
    run_task([]() -> task<> {
      baton::queue<int> q;
      auto h = baton_test::spawn_cancelled_before([&q] { return q.get(); });
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
    });
  }

  TEST_CASE("join waits until every item put is marked done; task_done too often throws") {
    run_task([]() -> task<> {
      baton::queue<int> q;
      co_await q.join();  // nothing put: returns at once
      co_await q.put(1);
      co_await q.put(2);
      bool joined = false;
      auto j = baton::spawn([](baton::queue<int>& qu, bool& flag) -> task<> {
        co_await qu.join();
        flag = true;
      }(q, joined));
      (void)co_await q.get();
      q.task_done();
      co_await settle();
      CHECK_FALSE(joined);
      (void)co_await q.get();
      q.task_done();
      co_await j;
      CHECK(joined);
      CHECK_THROWS_AS(q.task_done(), baton::runtime_error);
    });
  }

  TEST_CASE("move-only items pass through, and items left behind are destroyed with the queue") {
    using item = std::unique_ptr<baton_test::counted>;
    run_task([]() -> task<> {
      {
        baton::queue<item> q(2);
        co_await q.put(std::make_unique<baton_test::counted>(1));
        co_await q.put(std::make_unique<baton_test::counted>(2));
        item first = co_await q.get();
        CHECK(first->value == 1);
        CHECK(baton_test::counted::live == 2);
      }
      CHECK(baton_test::counted::live == 0);
    });
  }

  TEST_CASE("the waiter's context is the same after get and after put") {
    run_task([]() -> task<> {
      baton::queue<int> q(1);
      auto getter = baton::spawn(baton_test::user_after("getter", [&q] { return q.get(); }));
      co_await settle();
      (void)user.set("main");
      co_await q.put(1);
      CHECK(co_await getter == "getter");
      co_await q.put(2);  // full now
      auto putter = baton::spawn(baton_test::user_after("putter", [&q] { return q.put(3); }));
      co_await settle();
      CHECK(co_await q.get() == 2);
      CHECK(co_await putter == "putter");
      CHECK(user.get() == "main");
    });
  }

  TEST_CASE("on a four-thread loop 4 producers and 4 consumers pass 10000 items, each once") {
    constexpr int producers = 4;
    constexpr int consumers = 4;
    constexpr int items = 10000;
    constexpr int per_producer = items / producers;
    const std::vector<int> received = run_task(
        []() -> task<std::vector<int>> {
          baton::queue<int> q(16);
          baton_test::collector out;
          auto cs = baton_test::spawn_n(consumers, [&](int) { return get_until_stop(q, out); });
          auto ps = baton_test::spawn_n(
              producers, [&](int p) { return put_range(q, p * per_producer, per_producer); });
          for (auto& h : ps) co_await h;
          for (int k = 0; k < consumers; ++k) co_await q.put(-1);  // one stop sign each
          for (auto& h : cs) co_await h;
          co_return out.take();
        },
        baton_test::four_threads());
    REQUIRE(received.size() == items);
    CHECK(baton_test::sorted(received) == baton_test::numbers_below(items));
  }

  TEST_CASE("on a four-thread loop cancelling getters at random never loses or repeats an item") {
    constexpr int items = 4000;
    const std::vector<int> seen = run_task(
        []() -> task<std::vector<int>> {
          baton::queue<int> q(8);
          baton_test::collector out;
          auto getters = baton_test::spawn_n(16, [&](int) { return get_until_stop(q, out); });
          auto producer = baton::spawn(put_range(q, 0, items));
          for (int k = 0; k < 16; k += 2) {  // cancel half the getters while items flow
            co_await baton::sleep(0ms);
            getters[static_cast<std::size_t>(k)].cancel();
          }
          co_await producer;
          for (int k = 0; k < 16; ++k) co_await q.put(-1);  // stop signs (extra ones stay)
          (void)co_await baton_test::join_all(getters);
          for (auto v : drain(q)) {
            if (v >= 0) out.add(v);
          }
          co_return out.take();
        },
        baton_test::four_threads());
    CHECK(baton_test::sorted(seen) == baton_test::numbers_below(items));
  }

}  // TEST_SUITE
