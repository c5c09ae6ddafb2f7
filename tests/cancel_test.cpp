// SPDX-License-Identifier: BSL-1.0
// Cancellation with asyncio's semantics: where cancelled_error appears and what it reaches.
#include <baton/task_handle.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/suspended_at.hpp>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;

namespace {

baton::context_var<std::string> user("user");

task<> sleep_forever() { co_await baton::sleep(std::chrono::hours(1)); }

}  // namespace

TEST_SUITE("cancel") {
  TEST_CASE("cancel wakes a sleeping task at once with cancelled_error") {
    run_task([]() -> task<> {
      auto h = baton::spawn(sleep_forever());
      REQUIRE(co_await baton_test::suspended_at(h, "sleep"));
      CHECK(h.cancel());
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
      CHECK(h.cancelled());
    });
  }

  TEST_CASE("cancel before the task first ran stops it before its first statement") {
    run_task([]() -> task<> {
      bool ran = false;
      auto h = baton::spawn([](bool& r) -> task<> {
        r = true;
        co_return;
      }(ran));
      CHECK(h.cancel());
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
      CHECK_FALSE(ran);
    });
  }

  TEST_CASE("cancel of a finished task returns false") {
    run_task([]() -> task<> {
      auto h = baton::spawn([]() -> task<> { co_return; }());
      co_await h;
      CHECK_FALSE(h.cancel());
      CHECK_FALSE(h.cancelled());
    });
  }

  TEST_CASE("a cancelled task may catch cancelled_error and clean up with its context intact") {
    run_task([]() -> task<> {
      auto h = baton::spawn([]() -> task<std::string> {
        (void)user.set("ada");
        bool cancelled = false;
        try {
          co_await sleep_forever();
        } catch (const baton::cancelled_error&) {
          cancelled = true;
        }
        if (!cancelled) co_return "not cancelled";
        co_await baton::sleep(1ms);  // clean-up may await again
        co_return "cleaned up as " + user.get();
      }());
      REQUIRE(co_await baton_test::suspended_at(h, "sleep"));
      h.cancel();
      CHECK(co_await h == "cleaned up as ada");
      CHECK_FALSE(h.cancelled());
    });
  }

  TEST_CASE("a cancel requested while the task runs arrives at its next suspension point") {
    run_task([]() -> task<> {
      auto h = baton::spawn([]() -> task<int> {
        baton::detail::task_base* self = baton::detail::running_task;
        baton::detail::cancel(self);  // as if another task cancelled it right now
        int reached = 1;
        try {
          co_await baton::sleep(0ms);
          reached = 2;
        } catch (const baton::cancelled_error&) {
        }
        co_return reached;
      }());
      CHECK(co_await h == 1);
    });
  }

  TEST_CASE("cancelling a task cancels the plain task it awaits") {
    run_task([]() -> task<> {
      bool inner_saw_cancel = false;
      auto h = baton::spawn([](bool& saw) -> task<> {
        co_await [](bool& s) -> task<> {
          try {
            co_await sleep_forever();
          } catch (const baton::cancelled_error&) {
            s = true;
            throw;
          }
        }(saw);
      }(inner_saw_cancel));
      REQUIRE(co_await baton_test::suspended_at(h, "sleep"));  // in the inner task's sleep
      h.cancel();
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
      CHECK(inner_saw_cancel);
    });
  }

  TEST_CASE("cancelling a task cancels the spawned task it awaits") {
    run_task([]() -> task<> {
      auto child = baton::spawn(sleep_forever());
      auto parent = baton::spawn([](baton::task_handle<> c) -> task<> { co_await c; }(child));
      REQUIRE(co_await baton_test::suspended_at(parent, "task"));
      parent.cancel();
      CHECK_THROWS_AS(co_await parent, baton::cancelled_error);
      CHECK(child.cancelled());
    });
  }

  TEST_CASE("awaiting a cancelled task throws cancelled_error in the awaiter") {
    run_task([]() -> task<> {
      auto h = baton::spawn(sleep_forever());
      h.cancel();
      try {
        co_await h;
        FAIL("no cancelled_error");
      } catch (const baton::cancelled_error&) {
      }
    });
  }

  TEST_CASE("a task cancelled while it runs that returns without suspending again ends cancelled") {
    run_task([]() -> task<> {
      auto h = baton::spawn([]() -> task<int> {
        baton::detail::cancel(baton::detail::running_task);  // as if cancelled from elsewhere
        co_return 5;  // no suspension point left to deliver it: asyncio cancels at the end
      }());
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
      CHECK(h.cancelled());
    });
  }

  TEST_CASE("a wait that does not suspend does not consume a pending cancel") {
    run_task([]() -> task<> {
      baton::event ready;
      ready.set();
      auto h = baton::spawn([](baton::event& e) -> task<int> {
        baton::detail::cancel(baton::detail::running_task);
        co_await e.wait();  // already set: no suspension, so nothing is delivered here
        co_return 5;
      }(ready));
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
      CHECK(h.cancelled());
    });
  }

  TEST_CASE("a failure beats a pending cancel: the task ends with its own exception") {
    run_task([]() -> task<> {
      auto h = baton::spawn([]() -> task<int> {
        baton::detail::cancel(baton::detail::running_task);
        throw std::runtime_error("own failure");
        co_return 5;
      }());
      CHECK_THROWS_WITH_AS(co_await h, "own failure", std::runtime_error);
      CHECK_FALSE(h.cancelled());
    });
  }

  TEST_CASE("a task ending with a type derived from cancelled_error counts as cancelled") {
    struct shutdown_requested : baton::cancelled_error {};
    run_task([]() -> task<> {
      auto derived = baton::spawn([]() -> task<> {
        throw shutdown_requested();
        co_return;
      }());
      auto plain = baton::spawn([]() -> task<> {
        throw baton::cancelled_error();
        co_return;
      }());
      CHECK_THROWS_AS(co_await derived, shutdown_requested);
      CHECK_THROWS_AS(co_await plain, baton::cancelled_error);
      CHECK(derived.cancelled());
      CHECK(plain.cancelled());
    });
  }

  TEST_CASE("tasks ended by a plain cancellation keep one shared cancelled_error, not one each") {
    run_task([]() -> task<> {
      auto a = baton::spawn(sleep_forever());
      auto b = baton::spawn(sleep_forever());
      co_await baton::sleep(0ms);  // both asleep
      a.cancel();
      b.cancel();
      const void* first = nullptr;
      const void* second = nullptr;
      try {
        co_await a;
      } catch (const baton::cancelled_error& e) {
        first = &e;
        CHECK(std::string(e.what()) == baton::cancelled_error().what());
      }
      try {
        co_await b;
      } catch (const baton::cancelled_error& e) {
        second = &e;
      }
      REQUIRE(first != nullptr);
      CHECK(first == second);  // each task's own was freed where it was thrown
      CHECK(a.cancelled());
      CHECK(b.cancelled());
    });
  }

  TEST_CASE("a type derived from cancelled_error keeps its own object and fields") {
    struct shutdown_requested : baton::cancelled_error {
      int code = 0;
    };
    run_task([]() -> task<> {
      auto h = baton::spawn([]() -> task<> {
        shutdown_requested e;
        e.code = 42;
        throw e;
        co_return;
      }());
      try {
        co_await h;
        FAIL("no shutdown_requested");
      } catch (const shutdown_requested& e) {
        CHECK(e.code == 42);
      }
      CHECK(h.cancelled());
    });
  }

  TEST_CASE("yield (sleep 0) is a cancellation point") {
    run_task([]() -> task<> {
      int rounds = 0;
      auto h = baton::spawn([](int& n) -> task<> {
        for (;;) {
          ++n;
          co_await baton::sleep(0ms);
        }
      }(rounds));
      while (rounds < 2) co_await baton::sleep(0ms);  // it has yielded at least once
      h.cancel();
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
    });
  }

}  // TEST_SUITE
