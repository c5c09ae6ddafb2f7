// SPDX-License-Identifier: BSL-1.0
// wait_for, gather, task_group and shield: asyncio's semantics.
#include <baton/gather.hpp>
#include <baton/shield.hpp>
#include <baton/task_group.hpp>
#include <baton/wait_for.hpp>

#include <baton/baton.hpp>
#include <boost/asio/steady_timer.hpp>
#include <doctest/doctest.h>
#include <support/counting_handler.hpp>
#include <support/run_test.hpp>
#include <support/flow_vars.hpp>
#include <support/settle.hpp>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;

namespace {

baton::context_var<int> marker("marker");

task<> sleep_forever() { co_await baton::sleep(std::chrono::hours(1)); }

task<int> value_after(int v, std::chrono::milliseconds d) {
  co_await baton::sleep(d);
  co_return v;
}

// Finishes only once the test sets `go`: the test decides the order, not a timer.
task<int> value_when(int v, baton::event& go) {
  co_await go.wait();
  co_return v;
}

task<int> fail_after(std::chrono::milliseconds d) {
  co_await baton::sleep(d);
  throw std::runtime_error("failed");
}

}  // namespace

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
      co_await baton::sleep(0ms);
      h.cancel();
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
    });
  }

  TEST_CASE("wait_for passes the work's own exception through") {
    run_task([]() -> task<> {
      CHECK_THROWS_AS(co_await baton::wait_for(fail_after(0ms), 1h), std::runtime_error);
    });
  }

}  // TEST_SUITE

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
      co_await baton::sleep(0ms);
      g.cancel();
      CHECK_THROWS_AS(co_await g, baton::cancelled_error);
      CHECK_THROWS_AS(co_await x, baton::cancelled_error);
      CHECK_THROWS_AS(co_await y, baton::cancelled_error);
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

TEST_SUITE("task_group") {
  TEST_CASE("a task group waits for every child") {
    run_task([]() -> task<> {
      int done = 0;
      baton::task_group g;
      for (int i = 0; i < 5; ++i) {
        g.spawn([](int& d, int k) -> task<> {
          co_await baton::sleep(std::chrono::milliseconds(k));
          ++d;
        }(done, i));
      }
      co_await g.wait();
      CHECK(done == 5);
    });
  }

  TEST_CASE("the first failure cancels the siblings and wait rethrows it") {
    run_task([]() -> task<> {
      baton::task_group g;
      auto slow = g.spawn(sleep_forever());
      g.spawn(fail_after(1ms));
      CHECK_THROWS_WITH_AS(co_await g.wait(), "failed", std::runtime_error);
      CHECK(slow.cancelled());
      CHECK(g.errors().size() == 1);
    });
  }

  TEST_CASE("every failure is available from errors(), the first one rethrown") {
    run_task([]() -> task<> {
      baton::task_group g;
      g.spawn([]() -> task<> {  // fails while being cancelled by its sibling's failure
        try {
          co_await sleep_forever();
        } catch (const baton::cancelled_error&) {
          throw std::logic_error("clean-up failed");
        }
      }());
      g.spawn(fail_after(1ms));
      CHECK_THROWS_AS(co_await g.wait(), std::runtime_error);
      REQUIRE(g.errors().size() == 2);
      CHECK_THROWS_AS(std::rethrow_exception(g.errors()[1]), std::logic_error);
    });
  }

  TEST_CASE("cancelling the waiting task cancels the children and waits for them") {
    run_task([]() -> task<> {
      auto child_finished = std::make_shared<bool>(false);
      auto parent = baton::spawn([](std::shared_ptr<bool> f) -> task<> {
        baton::task_group g;
        g.spawn([](std::shared_ptr<bool> ff) -> task<> {
          try {
            co_await sleep_forever();
          } catch (const baton::cancelled_error&) {
            *ff = true;
            throw;
          }
        }(f));
        co_await g.wait();
      }(child_finished));
      co_await baton::sleep(0ms);
      parent.cancel();
      CHECK_THROWS_AS(co_await parent, baton::cancelled_error);
      CHECK(*child_finished);
    });
  }

  TEST_CASE("children of a group get copies of the spawner's context") {
    run_task([]() -> task<> {
      (void)marker.set(1);
      baton::task_group g;
      auto h = g.spawn([]() -> task<int> {
        int seen = marker.get();
        (void)marker.set(2);
        co_return seen;
      }());
      co_await g.wait();
      CHECK(co_await h == 1);
      CHECK(marker.get() == 1);
    });
  }

}  // TEST_SUITE

TEST_SUITE("shield") {
  TEST_CASE("a shielded task survives the cancellation of its awaiter") {
    run_task([]() -> task<> {
      baton::event go;
      auto inner = baton::spawn(value_when(9, go));
      auto outer = baton::spawn([](baton::task_handle<int> h) -> task<int> {
        co_return co_await baton::shield(h);
      }(inner));
      co_await baton::sleep(0ms);
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

TEST_SUITE("wait_for asio") {
  TEST_CASE("wait_for accepts an Asio operation and cancels it on time-out") {
    run_task([]() -> task<> {
      boost::asio::steady_timer t(baton::current_executor(), std::chrono::hours(1));
      CHECK_THROWS_AS(co_await baton::wait_for(t.async_wait(baton::use_task), 1ms),
                      baton::timeout_error);
    });
  }

}  // TEST_SUITE

TEST_SUITE("combinator edge cases") {
  TEST_CASE("a gathered task cancelled by someone else fails the gather but not its siblings") {
    run_task([]() -> task<> {
      baton::event go;
      auto victim = baton::spawn(sleep_forever());
      auto sibling = baton::spawn(value_when(5, go));
      auto g = baton::spawn(
          [](auto a, auto b) -> task<> { (void)co_await baton::gather(a, b); }(victim, sibling));
      co_await baton::sleep(0ms);
      victim.cancel();
      CHECK_THROWS_AS(co_await g, baton::cancelled_error);
      CHECK_FALSE(sibling.cancelled());
      go.set();
      CHECK(co_await sibling == 5);
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
      co_await baton::sleep(0ms);
      h.cancel();
      CHECK(co_await h);
    });
  }

  TEST_CASE("a second concurrent wait on a task group throws runtime_error") {
    run_task([]() -> task<> {
      baton::event go;
      baton::task_group g;
      g.spawn(value_when(1, go));
      auto first = baton::spawn([](baton::task_group& grp) -> task<> { co_await grp.wait(); }(g));
      co_await baton::sleep(0ms);
      CHECK_THROWS_AS(co_await g.wait(), baton::runtime_error);
      go.set();
      co_await first;
    });
  }

  TEST_CASE("spawning into a task group after a failure throws runtime_error") {
    run_task([]() -> task<> {
      baton::task_group g;
      g.spawn(fail_after(0ms));
      co_await baton_test::settle();  // the child fails
      CHECK_THROWS_AS(g.spawn(value_after(1, 0ms)), baton::runtime_error);
      CHECK_THROWS_AS(co_await g.wait(), std::runtime_error);
    });
  }

  TEST_CASE("failures of a task group that is never waited are reported") {
    baton_test::counting_handler failures;
    baton::run(
        []() -> task<> {
          {
            baton::task_group g;
            g.spawn(fail_after(0ms));
            co_await baton_test::settle();  // the child fails
          }                                 // destroyed without wait()
          co_await baton::sleep(0ms);
        }(),
        failures.options());
    CHECK(failures.reports == 1);
  }

  TEST_CASE("a task group releases its children as they finish") {
    run_task([]() -> task<> {
      baton::task_group g;
      std::weak_ptr<int> watch;
      {
        auto h =
            g.spawn([]() -> task<std::shared_ptr<int>> { co_return std::make_shared<int>(1); }());
        watch = co_await h;
      }
      CHECK(watch.expired());  // the group does not keep the finished child's result alive
      g.spawn(value_after(1, 1ms));
      co_await g.wait();
    });
  }

}  // TEST_SUITE

TEST_SUITE("task_group lifetime") {
  TEST_CASE("spawning into a task group after wait returned throws runtime_error") {
    run_task([]() -> task<> {
      baton::task_group g;
      g.spawn(value_after(1, 0ms));
      co_await g.wait();
      CHECK_THROWS_AS(g.spawn(value_after(2, 0ms)), baton::runtime_error);
    });
  }

  TEST_CASE("a failure after errors() was read is still reported when nobody sees it") {
    baton_test::counting_handler failures;
    baton::run(
        []() -> task<> {
          {
            baton::task_group g;
            CHECK(g.errors().empty());
            g.spawn(fail_after(0ms));
            co_await baton_test::settle();  // the child fails
          }
          co_await baton::sleep(0ms);
        }(),
        failures.options());
    CHECK(failures.reports == 1);
  }

}  // TEST_SUITE

TEST_SUITE("task_group and flow") {
  TEST_CASE("task_group children get always and tasks vars, not never vars") {
    baton_test::flow_vars v;
    std::string seen;
    run_task([&]() -> task<> {
      v.set_all();
      baton::task_group g;
      auto h = g.spawn(baton_test::seen_by_task(v));
      co_await g.wait();
      seen = co_await h;
    });
    CHECK(seen == baton_test::to_a_task);
  }
}  // TEST_SUITE
