// SPDX-License-Identifier: BSL-1.0
// Debug mode: slow steps, tasks never awaited, contexts left on another thread, and silence
// when it is off.
#include <baton/debug.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using baton::debug_report;
using baton::task;
using baton_test::run_task;

namespace {

baton::context_var<std::string> request_id("request_id");
baton::context_var<std::string> secret("secret");

/// Collects reports; a run_options::debug_handler (the loop calls it one at a time).
struct captured {
  std::mutex mutex;
  std::vector<debug_report> reports;

  baton::run_options options(std::chrono::nanoseconds slow_step = 100ms) {
    baton::run_options o;
    o.debug = true;
    o.slow_step = slow_step;
    o.debug_vars = {"request_id"};
    o.debug_handler = [this](const debug_report& r) {
      std::lock_guard lock(mutex);
      reports.push_back(r);
    };
    return o;
  }
};

/// Blocks the loop thread for longer than `d` by the clock (not a timing assertion: the step
/// is at least d long whatever the machine's speed).
void busy_for(std::chrono::nanoseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

task<int> answer() { co_return 42; }

/// Makes sure BATON_DEBUG does not leak from the environment into a test that needs it off.
struct env_unset {
  env_unset() { ::unsetenv("BATON_DEBUG"); }
};

}  // namespace

TEST_SUITE("debug") {
  TEST_CASE("a step longer than slow_step is reported with its task, awaiting and chosen vars") {
    env_unset clean;
    captured c;
    run_task(
        []() -> task<> {
          auto h = baton::spawn(
              []() -> task<> {
                (void)request_id.set("r-42");
                (void)secret.set("hunter2");
                busy_for(30ms);  // the slow step: from the start to the first suspension
                co_await baton::sleep(1ms);
              }(),
              {.name = "blocker"});
          co_await h;
        },
        c.options(10ms));
    REQUIRE(c.reports.size() == 1);
    const debug_report& r = c.reports[0];
    CHECK(r.what == debug_report::kind::slow_step);
    CHECK(r.task == "blocker");
    CHECK(r.took >= 30ms);
    CHECK(r.awaiting == "sleep");
    REQUIRE(r.vars.size() == 1);  // the chosen var only: the secret stays out
    CHECK(r.vars[0].first == "request_id");
    CHECK(r.vars[0].second.find("r-42") != std::string::npos);
    CHECK(r.message.rfind("baton debug: task 'blocker' ran ", 0) == 0);
    CHECK(r.message.find("awaiting sleep") != std::string::npos);
    CHECK(r.message.find("hunter2") == std::string::npos);
  }

  TEST_CASE("a slow last step reports the task as finished") {
    env_unset clean;
    captured c;
    run_task(
        []() -> task<> {
          co_await baton::sleep(0ms);
          busy_for(30ms);
        },
        c.options(10ms));
    REQUIRE(c.reports.size() == 1);
    CHECK(c.reports[0].task == "main");
    CHECK(c.reports[0].awaiting.empty());
    CHECK(c.reports[0].message.find("finished") != std::string::npos);
  }

  TEST_CASE("steps within slow_step are not reported") {
    env_unset clean;
    captured c;
    run_task(
        []() -> task<> {
          for (int i = 0; i < 100; ++i) co_await baton::sleep(0ms);
          CHECK(co_await answer() == 42);
        },
        c.options(std::chrono::hours(1)));
    CHECK(c.reports.empty());
  }

  TEST_CASE("with debug mode off nothing is reported, however long a step runs") {
    env_unset clean;
    captured c;
    baton::run_options o = c.options(1ms);
    o.debug = false;
    run_task(
        []() -> task<> {
          busy_for(20ms);
          { auto dropped = answer(); }  // never awaited either
          co_return;
        },
        o);
    CHECK(c.reports.empty());
  }

  TEST_CASE("BATON_DEBUG=1 in the environment turns debug mode on") {
    captured c;
    baton::run_options o = c.options(5ms);
    o.debug = false;
    ::setenv("BATON_DEBUG", "1", 1);
    run_task(
        []() -> task<> {
          busy_for(20ms);
          co_return;
        },
        o);
    ::unsetenv("BATON_DEBUG");
    REQUIRE(c.reports.size() == 1);
    CHECK(c.reports[0].what == debug_report::kind::slow_step);
  }

  TEST_CASE("a task destroyed without being awaited or spawned is reported with its type") {
    env_unset clean;
    captured c;
    run_task(
        []() -> task<> {
          { auto forgotten = answer(); }    // created, dropped: the bug
          CHECK(co_await answer() == 42);   // awaited: fine
          auto h = baton::spawn(answer());  // spawned: fine
          CHECK(co_await h == 42);
          baton::task<int> moved = answer();
          baton::task<int> kept = std::move(moved);  // the moved-from one holds nothing
          CHECK(co_await std::move(kept) == 42);
        },
        c.options());
    REQUIRE(c.reports.size() == 1);
    const debug_report& r = c.reports[0];
    CHECK(r.what == debug_report::kind::never_awaited);
    CHECK(r.task == "main");
    CHECK(r.message.find("task<int>") != std::string::npos);
    CHECK(r.message.find("without being awaited or spawned") != std::string::npos);
  }

  TEST_CASE("a context::run left on another thread than the one that entered it is reported") {
    env_unset clean;
    captured c;
    baton::context ctx;
    // What a fiber that moves while suspended inside ctx.run() does: the entering half on
    // one thread, the leaving half (context::run's own exit path) on another.
    std::thread([&] { baton::detail::enter(baton::detail::access::cell(ctx)); }).join();
    run_task(
        [&]() -> task<> {
          baton::detail::context_cell* const mine = baton::detail::current_cell;
          baton::detail::leave_run(baton::detail::access::cell(ctx), mine);
          co_return;
        },
        c.options());
    REQUIRE(c.reports.size() == 1);
    CHECK(c.reports[0].what == debug_report::kind::context_left_elsewhere);
    CHECK(c.reports[0].task == "main");
    CHECK(c.reports[0].message.find("left on another") != std::string::npos);
    CHECK(ctx.size() == 0);  // left: it can be read (and entered) again
  }

  TEST_CASE("a context::run entered and left on one thread is not reported") {
    env_unset clean;
    captured c;
    run_task(
        []() -> task<> {
          baton::context ctx;
          ctx.run([] { (void)request_id.set("inside"); });
          co_return;
        },
        c.options());
    CHECK(c.reports.empty());
  }

  TEST_CASE("a throwing debug handler does not stop the loop") {
    env_unset clean;
    baton::run_options o;
    o.debug = true;
    o.slow_step = 1ms;
    int calls = 0;
    o.debug_handler = [&](const debug_report&) {
      ++calls;
      throw std::runtime_error("handler bug");
    };
    CHECK(run_task(
              []() -> task<int> {
                busy_for(10ms);
                co_return 7;
              },
              o) == 7);
    CHECK(calls == 1);
  }
}
