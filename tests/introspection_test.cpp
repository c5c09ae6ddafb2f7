// SPDX-License-Identifier: BSL-1.0
// Introspection: the current task, every live task, and a readable dump.
#include <baton/introspection.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>

#include <algorithm>
#include <chrono>
#include <string>

using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;

namespace {
baton::context_var<std::string> user("user");
}

TEST_SUITE("introspection") {
  TEST_CASE("current_task names the running task and shows its context") {
    run_task([]() -> task<> {
      auto h = baton::spawn(
          []() -> task<baton::task_info> {
            (void)user.set("ada");
            co_return *baton::current_task();
          }(),
          {.name = "worker"});
      const baton::task_info i = co_await h;
      CHECK(i.name == "worker");
      CHECK(i.id == h.id());
      CHECK(i.state == "running");
      CHECK(std::find(i.vars.begin(), i.vars.end(),
                      std::pair<std::string, std::string>("user", "ada")) != i.vars.end());
    });
  }

  TEST_CASE("current_task is empty outside any task") { CHECK_FALSE(baton::current_task()); }

  TEST_CASE("all_tasks lists a suspended task with what it awaits") {
    run_task([]() -> task<> {
      auto h = baton::spawn(
          []() -> task<> {
            (void)user.set("grace");
            co_await baton::sleep(std::chrono::hours(1));
          }(),
          {.name = "sleeper"});
      co_await baton::sleep(0ms);
      bool found = false;
      for (const auto& i : baton::all_tasks()) {
        if (i.name != "sleeper") continue;
        found = true;
        CHECK(i.state == "suspended");
        CHECK(i.awaiting == "sleep");
        REQUIRE(i.vars.size() == 1);
        CHECK(i.vars[0].second == "grace");
      }
      CHECK(found);
      const std::string dump = baton::dump_tasks();
      CHECK(dump.find("'sleeper' suspended, awaiting sleep") != std::string::npos);
      CHECK(dump.find("user = grace") != std::string::npos);
      h.cancel();
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
    });
  }

  TEST_CASE("a cancelled task still shows what it awaits until it resumes") {
    run_task([]() -> task<> {
      baton::event ev;
      auto h = baton::spawn([](baton::event& e) -> task<> { co_await e.wait(); }(ev),
                            {.name = "waiter"});
      co_await baton::sleep(0ms);
      CHECK(h.cancel());
      CHECK(h.cancel());  // a second request is counted; the hook stays as it was
      // One loop thread, and this task has not suspended since: the waiter has not resumed.
      bool found = false;
      for (const auto& i : baton::all_tasks()) {
        if (i.name != "waiter") continue;
        found = true;
        CHECK(i.awaiting == "event");
      }
      CHECK(found);
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
      CHECK(h.name() == "waiter");  // the name outlives the run, as long as a handle does
    });
  }

  TEST_CASE("unnamed tasks are called task-<id>") {
    run_task([]() -> task<> {
      auto h = baton::spawn([]() -> task<> { co_return; }());
      CHECK(h.name() == "task-" + std::to_string(h.id()));
      co_await h;
    });
  }

  TEST_CASE("all_tasks outside a loop throws runtime_error") {
    CHECK_THROWS_AS((void)baton::all_tasks(), baton::runtime_error);
  }

}  // TEST_SUITE
