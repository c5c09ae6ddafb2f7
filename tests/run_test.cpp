// SPDX-License-Identifier: BSL-1.0
// run(): main's result, the caller's context around it, the tasks left behind, unretrieved
// failures.
#include <baton/run.hpp>

#include <baton/baton.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <doctest/doctest.h>
#include <support/counting_handler.hpp>
#include <support/flow_vars.hpp>
#include <support/run_test.hpp>
#include <support/settle.hpp>

#include <chrono>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;

namespace {

baton::context_var<std::string> user("user");

}  // namespace

TEST_SUITE("run") {
  TEST_CASE("main runs in a copy of the calling thread's context") {
    baton::context().run([] {
      (void)user.set("caller");
      run_task([]() -> task<> {
        CHECK(user.get() == "caller");
        (void)user.set("main");
        co_return;
      });
      CHECK(user.get() == "caller");
    });
  }

  TEST_CASE("run returns main's result or rethrows its exception") {
    CHECK(baton::run([]() -> task<int> { co_return 5; }()) == 5);
    CHECK_THROWS_WITH_AS(baton::run([]() -> task<> {
                           throw std::logic_error("main failed");
                           co_return;
                         }()),
                         "main failed", std::logic_error);
  }

  TEST_CASE("a failure nobody retrieved goes to the loop's exception handler, named") {
    baton_test::counting_handler failures;
    baton::run(
        []() -> task<> {
          (void)baton::spawn(
              []() -> task<> {
                throw std::runtime_error("lost");
                co_return;
              }(),
              {.name = "orphan"});
          co_await baton::sleep(1ms);
        }(),
        failures.options());
    REQUIRE(failures.task_names.size() == 1);
    CHECK(failures.task_names[0] == "orphan");
  }

  TEST_CASE("a retrieved failure is not reported") {
    baton_test::counting_handler failures;
    baton::run(
        []() -> task<> {
          auto h = baton::spawn([]() -> task<> {
            throw std::runtime_error("seen");
            co_return;
          }());
          CHECK_THROWS(co_await h);
        }(),
        failures.options());
    CHECK(failures.reports == 0);
  }

  TEST_CASE("tasks left when main ends are cancelled and awaited") {
    bool cleaned_up = false;
    baton::run([](bool& flag) -> task<> {
      (void)baton::spawn([](bool& f) -> task<> {
        try {
          co_await baton::sleep(std::chrono::hours(1));
        } catch (const baton::cancelled_error&) {
          f = true;
          throw;
        }
      }(flag));
      co_await baton::sleep(0ms);
    }(cleaned_up));
    CHECK(cleaned_up);
  }

  TEST_CASE("a failure dropped after its loop ended never reaches a later loop's handler") {
    baton::task_handle<> kept;
    baton::run([](baton::task_handle<>& k) -> task<> {
      k = baton::spawn([]() -> task<> {
        throw std::runtime_error("from the first loop");
        co_return;
      }());
      co_await baton_test::settle();  // the child fails while its loop runs
    }(kept));
    baton_test::counting_handler second_loop;
    baton::run(
        [](baton::task_handle<>& k) -> task<> {
          k = {};  // dropped while another loop runs: goes to stderr, not to this loop
          co_return;
        }(kept),
        second_loop.options());
    CHECK(second_loop.reports == 0);
  }

  TEST_CASE("a task whose context the caller of run() has entered fails with context_error") {
    baton::context ctx;
    ctx.run([&] {
      baton::run([](baton::context c) -> task<> {
        auto h = baton::spawn([]() -> task<> { co_return; }(), c);
        CHECK_THROWS_AS(co_await h, baton::context_error);
      }(ctx));
    });
  }

  TEST_CASE("plain Asio handlers on the loop never change the caller's context") {
    baton::context_var<int> v("v");
    baton::context().run([&] {
      (void)v.set(1);
      baton::run([](baton::context_var<int>& var) -> task<> {
        co_await boost::asio::post(
            baton::current_executor(),
            boost::asio::bind_executor(baton::current_executor(), baton::use_task));
        boost::asio::post(baton::current_executor(), [&var] { (void)var.set(99); });
        // Handlers run in the order they were posted: this one completes after the one above.
        co_await boost::asio::post(baton::current_executor(), baton::use_task);
      }(v));
      CHECK(v.get() == 1);
    });
  }

  TEST_CASE("run's main task starts like a spawn: without the caller's never vars") {
    baton_test::flow_vars v;
    const std::string seen = baton::context().run([&] {
      v.set_all();
      return run_task([&]() -> task<std::string> { co_return v.seen(); });
    });
    CHECK(seen == baton_test::to_a_task);
  }

}  // TEST_SUITE
