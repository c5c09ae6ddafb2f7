// SPDX-License-Identifier: BSL-1.0
// to_thread / run_in_executor: context copies into pool threads, nothing leaking anywhere.
#include <baton/to_thread.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/flow_vars.hpp>
#include <support/thread_mirror.hpp>

#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <latch>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;

namespace {
baton::context_var<std::string> user("user");
}

TEST_SUITE("to_thread") {
  TEST_CASE("to_thread runs f on another thread and returns its result") {
    run_task([]() -> task<> {
      const auto loop_thread = std::this_thread::get_id();
      auto id = co_await baton::to_thread([] { return std::this_thread::get_id(); });
      CHECK(id != loop_thread);
      CHECK(co_await baton::to_thread([](int a, int b) { return a * b; }, 6, 7) == 42);
    });
  }

  TEST_CASE("f sees a copy of the awaiting task's context") {
    run_task([]() -> task<> {
      (void)user.set("ada");
      CHECK(co_await baton::to_thread([] { return user.get(); }) == "ada");
    });
  }

  TEST_CASE("sets inside f never leak back to the task") {
    run_task([]() -> task<> {
      (void)user.set("ada");
      co_await baton::to_thread([] { (void)user.set("mallory"); });
      CHECK(user.get() == "ada");
    });
  }

  TEST_CASE("f's exception is rethrown in the task, and the pool thread is left clean") {
    run_task(
        []() -> task<> {
          (void)user.set("ada");
          CHECK_THROWS_WITH_AS(co_await baton::to_thread([]() -> int {
                                 (void)user.set("mallory");
                                 throw std::runtime_error("blocking call failed");
                               }),
                               "blocking call failed", std::runtime_error);
          // A job from a task without the var sees nothing left by the failed job.
          auto h = baton::spawn(
              []() -> task<bool> {
                co_return co_await baton::to_thread([] { return user.try_get().has_value(); });
              }(),
              baton::context());
          CHECK_FALSE(co_await h);
        },
        [] {
          baton::run_options o;
          o.blocking_threads =
              1;  // one pool thread: the next job surely runs where the last one did
          return o;
        }());
  }

  TEST_CASE("jobs on one pool thread never see each other's values") {
    baton::run_options o;
    o.blocking_threads = 1;
    run_task(
        []() -> task<> {
          std::vector<baton::task_handle<bool>> hs;
          for (int i = 0; i < 50; ++i) {
            hs.push_back(baton::spawn([](int k) -> task<bool> {
              if (k % 2 == 0) (void)user.set("user" + std::to_string(k));
              co_return co_await baton::to_thread([k] {
                const bool ok =
                    k % 2 == 0 ? user.get() == "user" + std::to_string(k) : !user.try_get();
                (void)user.set("left behind by " + std::to_string(k));
                return ok;
              });
            }(i)));
          }
          for (auto& h : hs) CHECK(co_await h);
        },
        o);
  }

  TEST_CASE("cancelling the awaiting task wakes it at once and requests stop on f's token") {
    std::atomic<bool> stop_seen{false};
    run_task([&]() -> task<> {
      std::latch started(1);
      auto h = baton::spawn([](std::latch& s, std::atomic<bool>& seen) -> task<> {
        co_await baton::to_thread([&](std::stop_token st) {
          s.count_down();
          while (!st.stop_requested()) std::this_thread::yield();
          seen = true;
        });
      }(started, stop_seen));
      co_await baton::to_thread([&] { started.wait(); });  // the job is running now
      h.cancel();
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
    });
    CHECK(stop_seen);  // run() waited for the job when it shut the pool down
  }

  TEST_CASE("run_in_executor runs on the given executor with the context") {
    boost::asio::thread_pool pool(2);
    run_task([&]() -> task<> {
      (void)user.set("grace");
      auto strand = boost::asio::make_strand(pool.get_executor());
      CHECK(co_await baton::run_in_executor(strand, [] { return user.get(); }) == "grace");
      CHECK(co_await baton::run_in_executor(
                pool.get_executor(), [](int x) { return x + 1; }, 1) == 2);
    });
    pool.join();
  }

  TEST_CASE("many to_thread calls in flight each get their own context") {
    baton::run_options o;
    o.threads = 2;
    run_task(
        []() -> task<> {
          std::vector<baton::task_handle<bool>> hs;
          for (int i = 0; i < 300; ++i) {
            hs.push_back(baton::spawn([](int k) -> task<bool> {
              (void)user.set(std::to_string(k));
              const std::string seen = co_await baton::to_thread([] { return user.get(); });
              co_return seen == std::to_string(k) && user.get() == std::to_string(k);
            }(i)));
          }
          for (auto& h : hs) CHECK(co_await h);
        },
        o);
  }

  TEST_CASE("a job queued behind a blocked job runs on another pool thread") {
    // The first job blocks until the second has run: the pool must hand the second to its other
    // thread (the wake-up passes on when a worker takes a job and more are queued).
    baton::run_options o;
    o.blocking_threads = 2;
    run_task(
        []() -> task<> {
          std::latch second_ran(1);
          auto first = baton::spawn([](std::latch& l) -> task<> {
            co_await baton::to_thread([&] { l.wait(); });
          }(second_ran));
          auto second = baton::spawn([](std::latch& l) -> task<> {
            co_await baton::to_thread([&] { l.count_down(); });
          }(second_ran));
          co_await second;
          co_await first;
        },
        o);
  }

  TEST_CASE("tasks looping on to_thread from two loop threads all get their own results") {
    baton::run_options o;
    o.threads = 2;
    o.blocking_threads = 3;
    run_task(
        []() -> task<> {
          std::vector<baton::task_handle<long>> hs;
          for (int i = 0; i < 200; ++i) {
            hs.push_back(baton::spawn([](int k) -> task<long> {
              (void)user.set(std::to_string(k));
              long sum = 0;
              for (int j = 0; j < 50; ++j) {
                sum += co_await baton::to_thread(
                    [k, j] { return user.get() == std::to_string(k) ? long{j} : -1000000L; });
              }
              co_return sum;
            }(i)));
          }
          for (auto& h : hs) CHECK(co_await h == 49 * 50 / 2);
        },
        o);
  }

  TEST_CASE("jobs still queued when the task is cancelled run before run() returns") {
    std::atomic<int> ran{0};
    baton::run_options o;
    o.blocking_threads = 1;
    run_task(
        [&]() -> task<> {
          std::latch release(1);
          int submitted = 0;  // one loop thread: counted in the step that submits the job
          std::vector<baton::task_handle<>> hs;
          // The first job holds the only pool thread; the others queue behind it.
          hs.push_back(baton::spawn([](std::latch& l, std::atomic<int>& n, int& s) -> task<> {
            ++s;
            co_await baton::to_thread([&] {
              l.wait();
              ++n;
            });
          }(release, ran, submitted)));
          for (int i = 0; i < 10; ++i) {
            hs.push_back(baton::spawn([](std::atomic<int>& n, int& s) -> task<> {
              ++s;
              co_await baton::to_thread([&] { ++n; });
            }(ran, submitted)));
          }
          while (submitted < 11) co_await baton::sleep(0ms);
          for (auto& h : hs) h.cancel();
          for (auto& h : hs) CHECK_THROWS_AS(co_await h, baton::cancelled_error);
          release.count_down();
        },
        o);
    CHECK(ran == 11);  // the pool ran every job it had accepted before run() returned
  }

}  // TEST_SUITE

TEST_SUITE("to_thread and flow") {
  TEST_CASE("to_thread and run_in_executor carry always vars only") {
    baton_test::flow_vars v;
    boost::asio::thread_pool pool(1);
    run_task([&]() -> task<> {
      v.set_all();
      CHECK(co_await baton::to_thread([&] { return v.seen(); }) == baton_test::to_a_thread);
      CHECK(co_await baton::run_in_executor(pool.get_executor(), [&] { return v.seen(); }) ==
            baton_test::to_a_thread);
      CHECK(v.seen() == baton_test::everything);  // the task keeps all three
    });
  }

  TEST_CASE("a pool thread keeps nothing of a job: not its values, not its tokens") {
    baton::context_var<int> n("n");
    boost::asio::thread_pool pool(1);  // one thread: every job runs on it
    run_task([&]() -> task<> {
      std::optional<baton::token<int>> left;
      co_await baton::run_in_executor(pool.get_executor(), [&] { left = n.set(1); });
      CHECK(co_await baton::run_in_executor(pool.get_executor(), [&] { return n.get(-1); }) == -1);
      // The token belongs to the first job's context, which is gone.
      CHECK_THROWS_AS(co_await baton::run_in_executor(pool.get_executor(), [&] { n.reset(*left); }),
                      baton::context_error);
    });
  }

  TEST_CASE("a job that throws leaves the pool thread's context as it was") {
    baton::context_var<int> n("n");
    boost::asio::thread_pool pool(1);
    run_task([&]() -> task<> {
      (void)n.set(5);
      CHECK_THROWS_AS(co_await baton::run_in_executor(pool.get_executor(),
                                                      [&]() -> int {
                                                        (void)n.set(6);
                                                        throw std::runtime_error("job");
                                                      }),
                      std::runtime_error);
      CHECK(co_await baton::run_in_executor(pool.get_executor(), [&] { return n.get(-1); }) == 5);
      CHECK(n.get() == 5);
    });
    std::promise<int> outside;
    boost::asio::post(pool, [&] { outside.set_value(n.get(-1)); });  // a plain job: no context
    CHECK(outside.get_future().get() == -1);
  }

  TEST_CASE("a mirror follows a pool job's context in and out") {
    struct tag;
    using mirror = baton_test::thread_mirror<tag, int>;
    baton::context_var<int> n("n");
    mirror::install(n);
    boost::asio::thread_pool pool(1);
    run_task([&]() -> task<> {
      (void)n.set(3);
      CHECK(mirror::seen == 3);
      const int in_job = co_await baton::run_in_executor(pool.get_executor(), [&] {
        const int before = mirror::seen.value_or(-1);
        (void)n.set(4);
        return before * 10 + mirror::seen.value_or(-1);
      });
      CHECK(in_job == 34);
      CHECK(mirror::seen == 3);
    });
    std::promise<std::optional<int>> after;
    boost::asio::post(pool, [&] { after.set_value(mirror::seen); });
    CHECK(after.get_future().get() == std::nullopt);  // the job's end switched it back
  }
}  // TEST_SUITE
