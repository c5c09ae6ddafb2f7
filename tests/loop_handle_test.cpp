// SPDX-License-Identifier: BSL-1.0
// loop_handle: plain threads hand tasks and calls to a running loop.
#include <baton/loop_handle.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/flow_vars.hpp>

#include <chrono>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;

namespace {
baton::context_var<std::string> user("user");

task<std::string> who() {
  co_await baton::sleep(0ms);
  co_return user.get("nobody");
}
}  // namespace

TEST_SUITE("loop_handle") {
  TEST_CASE("a plain thread submits a task and waits for its result") {
    run_task([]() -> task<> {
      auto loop = baton::this_loop();
      std::future<std::string> answer;
      co_await baton::to_thread([&] {
        baton::context().run([&] {
          (void)user.set("thread-user");
          answer = loop.submit(who());
        });
      });
      // The task runs on the loop, in a copy of the submitting thread's context.
      auto result = co_await baton::to_thread([&] { return answer.get(); });
      CHECK(result == "thread-user");
    });
  }

  TEST_CASE("a submitted task's exception reaches the future") {
    run_task([]() -> task<> {
      auto loop = baton::this_loop();
      auto f = co_await baton::to_thread([&] {
        return loop.submit([]() -> task<int> {
          throw std::runtime_error("bad");
          co_return 0;
        }());
      });
      CHECK_THROWS_AS(co_await baton::to_thread([&] { return f.get(); }), std::runtime_error);
    });
  }

  TEST_CASE("call runs a function on the loop thread") {
    run_task([]() -> task<> {
      auto loop = baton::this_loop();
      const auto loop_thread = std::this_thread::get_id();
      auto id = co_await baton::to_thread(
          [&] { return loop.call([] { return std::this_thread::get_id(); }).get(); });
      CHECK(id == loop_thread);
    });
  }

  TEST_CASE("after the loop finished, submit throws a clear runtime_error") {
    std::optional<baton::loop_handle> kept;
    run_task([&]() -> task<> {
      kept = baton::this_loop();
      CHECK(kept->running());
      co_return;
    });
    CHECK_FALSE(kept->running());
    CHECK_THROWS_AS((void)kept->submit(who()), baton::runtime_error);
    CHECK_THROWS_AS((void)kept->call([] { return 1; }), baton::runtime_error);
  }

  TEST_CASE("this_loop outside a loop throws runtime_error") {
    CHECK_THROWS_AS((void)baton::this_loop(), baton::runtime_error);
  }

}  // TEST_SUITE

TEST_SUITE("loop_handle and flow") {
  TEST_CASE("submit and call carry the submitting thread's always vars only") {
    baton_test::flow_vars v;
    run_task([&]() -> task<> {
      auto h = baton::this_loop();
      std::future<std::string> submitted;
      std::future<std::string> called;
      std::thread([&] {
        baton::context().run([&] {
          v.set_all();
          submitted = h.submit(baton_test::seen_by_task(v));
          called = h.call([&] { return v.seen(); });
        });
      }).join();
      while (submitted.wait_for(0s) != std::future_status::ready ||
             called.wait_for(0s) != std::future_status::ready) {
        co_await baton::sleep(1ms);
      }
      CHECK(submitted.get() == baton_test::to_a_thread);
      CHECK(called.get() == baton_test::to_a_thread);
    });
  }
}  // TEST_SUITE
