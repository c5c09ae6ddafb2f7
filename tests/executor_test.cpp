// SPDX-License-Identifier: BSL-1.0
// current_executor(): plain Asio handlers the loop runs, each in an empty context of its own.
#include <baton/executor.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/thread_mirror.hpp>

#include <boost/asio/post.hpp>

#include <optional>
#include <stdexcept>
#include <string>

using baton::task;
using baton_test::run_task;

namespace {

/// Posts f to the loop as a plain handler and waits until it ran.
template <class F>
task<> post_and_wait(F f) {
  baton::event ran;
  boost::asio::post(baton::current_executor(), [&] {
    f();
    ran.set();
  });
  co_await ran.wait();
}

}  // namespace

TEST_SUITE("executor") {
  TEST_CASE("a plain handler posted from a task starts in an empty context") {
    baton::context_var<std::string> user("user");
    run_task([&]() -> task<> {
      (void)user.set("ada");
      std::string seen;
      std::size_t size = 99;
      co_await post_and_wait([&] {
        seen = user.get("none");
        size = baton::copy_context().size();
      });
      CHECK(seen == "none");
      CHECK(size == 0);
      CHECK(user.get() == "ada");
    });
  }

  TEST_CASE("what a handler sets is gone when it returns, tokens included") {
    baton::context_var<int> n("n");
    for (unsigned threads : {1u, 2u}) {
      baton::run_options opts;
      opts.threads = threads;
      run_task(
          [&]() -> task<> {
            for (int i = 0; i < 20; ++i) {
              std::optional<baton::token<int>> left;
              co_await post_and_wait([&] { left = n.set(i); });
              int seen = 0;
              bool reset_refused = false;
              co_await post_and_wait([&] {
                seen = n.get(-1);
                try {
                  n.reset(*left);
                } catch (const baton::context_error&) {
                  reset_refused = true;
                }
              });
              CHECK(seen == -1);
              CHECK(reset_refused);
              CHECK(n.get(-1) == -1);  // and the task never saw it either
            }
          },
          opts);
    }
  }

  TEST_CASE("a handler's mirror shows the empty context, not the last task's value") {
    struct tag;
    using mirror = baton_test::thread_mirror<tag, int>;
    baton::context_var<int> n("n");
    mirror::install(n);
    run_task([&]() -> task<> {
      (void)n.set(7);
      CHECK(mirror::seen == 7);
      std::optional<int> in_handler = 0;
      co_await post_and_wait([&] { in_handler = mirror::seen; });
      CHECK(in_handler == std::nullopt);
      CHECK(mirror::seen == 7);
    });
  }

  TEST_CASE("the thread that called run() gets its context and mirror back") {
    struct tag;
    using mirror = baton_test::thread_mirror<tag, int>;
    baton::context_var<int> n("n");
    mirror::install(n);
    for (unsigned threads : {1u, 2u}) {
      baton::context().run([&] {
        (void)n.set(1);
        baton::run_options opts;
        opts.threads = threads;
        run_task(
            [&]() -> task<> {
              (void)n.set(2);
              co_await post_and_wait([&] { (void)n.set(3); });
              co_await baton::spawn([&]() -> task<> {
                (void)n.set(4);
                co_return;
              }());
            },
            opts);
        CHECK(n.get() == 1);
        CHECK(mirror::seen == 1);
      });
      CHECK_FALSE(mirror::seen.has_value());
    }
  }

  TEST_CASE("a handler that throws out of run() leaves the caller's context as it was") {
    baton::context_var<int> n("n");
    baton::context().run([&] {
      (void)n.set(1);
      CHECK_THROWS_AS(run_task([&]() -> task<> {
                        boost::asio::post(baton::current_executor(), [&] {
                          (void)n.set(3);
                          throw std::runtime_error("handler");
                        });
                        co_await baton::sleep(std::chrono::hours(1));
                      }),
                      std::runtime_error);
      CHECK(n.get() == 1);
    });
  }
}  // TEST_SUITE
