// SPDX-License-Identifier: BSL-1.0
// task_group: structured concurrency, failures, cancellation, lifetime (asyncio.TaskGroup).
#include <baton/task_group.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/counting_handler.hpp>
#include <support/flow_vars.hpp>
#include <support/run_test.hpp>
#include <support/sample_tasks.hpp>
#include <support/settle.hpp>
#include <support/suspended_at.hpp>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using baton::task;
using namespace baton_test;  // run_task and the sample tasks

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
      REQUIRE(co_await baton_test::suspended_at(parent, "task_group"));
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

  TEST_CASE("a second concurrent wait on a task group throws runtime_error") {
    run_task([]() -> task<> {
      baton::event go;
      baton::task_group g;
      g.spawn(value_when(1, go));
      auto first = baton::spawn([](baton::task_group& grp) -> task<> { co_await grp.wait(); }(g));
      REQUIRE(co_await baton_test::suspended_at(first, "task_group"));
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
