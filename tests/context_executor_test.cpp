// SPDX-License-Identifier: BSL-1.0
// context_executor: any Asio executor, carrying the submitter's context per job.
#include <baton/context_executor.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using baton::context;

namespace {
baton::context_var<std::string> user("user");
thread_local std::string tl_user;  // the article's initializer trick, for comparison
}  // namespace

TEST_SUITE("context_executor") {
  TEST_CASE("the initializer trick leaks one job's user into the next; baton does not") {
    asio::thread_pool pool(1);
    // The trick: a thread-local set per job by the job itself; a job without a user sees the
    // previous job's.
    std::promise<std::string> leaked;
    asio::post(pool, [] { tl_user = "alice"; });
    asio::post(pool, [&] { leaked.set_value(tl_user); });
    CHECK(leaked.get_future().get() == "alice");  // the bug the article describes

    auto ex = baton::make_context_executor(pool.get_executor());
    context().run([&] {
      (void)user.set("alice");
      asio::post(ex, [] { (void)user.set("alice-modified"); });
    });
    std::promise<bool> clean;
    context().run([&] { asio::post(ex, [&] { clean.set_value(!user.try_get().has_value()); }); });
    CHECK(clean.get_future().get());
    pool.join();
  }

  TEST_CASE("post, dispatch and defer each capture the submitter's context per submission") {
    asio::thread_pool pool(2);
    auto ex = baton::make_context_executor(pool.get_executor());
    std::vector<std::future<std::string>> results;
    std::vector<std::shared_ptr<std::promise<std::string>>> ps;
    for (int i = 0; i < 30; ++i) {
      auto p = std::make_shared<std::promise<std::string>>();
      results.push_back(p->get_future());
      context().run([&] {
        (void)user.set("u" + std::to_string(i));
        auto job = [p] { p->set_value(user.get("none")); };
        switch (i % 3) {
          case 0:
            asio::post(ex, job);
            break;
          case 1:
            asio::dispatch(ex, job);
            break;
          default:
            asio::defer(ex, job);
            break;
        }
      });
    }
    for (int i = 0; i < 30; ++i) CHECK(results[i].get() == "u" + std::to_string(i));
    pool.join();
  }

  TEST_CASE("a strand wrapped in a context executor keeps both properties") {
    asio::thread_pool pool(2);
    auto ex = baton::make_context_executor(asio::make_strand(pool.get_executor()));
    std::atomic<int> inside{0}, overlaps{0}, wrong{0};
    std::vector<std::future<void>> done;
    for (int i = 0; i < 100; ++i) {
      auto p = std::make_shared<std::promise<void>>();
      done.push_back(p->get_future());
      context().run([&] {
        (void)user.set(std::to_string(i));
        asio::post(ex, [&, p, i] {
          if (inside.fetch_add(1) != 0) ++overlaps;
          if (user.get() != std::to_string(i)) ++wrong;
          inside.fetch_sub(1);
          p->set_value();
        });
      });
    }
    for (auto& d : done) d.get();
    CHECK(overlaps == 0);
    CHECK(wrong == 0);
    pool.join();
  }

  TEST_CASE("context executors compare by their inner executor; require() keeps the wrapper") {
    asio::thread_pool a(1);
    asio::thread_pool b(1);
    const auto ea = baton::make_context_executor(a.get_executor());
    CHECK(ea == baton::make_context_executor(a.get_executor()));
    CHECK(ea != baton::make_context_executor(b.get_executor()));
    // require() answers with the same adaptor around the inner executor's answer.
    auto blocking = asio::require(ea, asio::execution::blocking.never);
    CHECK(blocking.get_inner_executor() ==
          asio::require(a.get_executor(), asio::execution::blocking.never));
    CHECK(asio::query(blocking, asio::execution::blocking) == asio::execution::blocking.never);
    std::promise<std::string> seen;
    context().run([&] {
      (void)user.set("bob");
      asio::execution::execute(blocking, [&] { seen.set_value(user.get("none")); });
    });
    CHECK(seen.get_future().get() == "bob");
    a.join();
    b.join();
  }

}  // TEST_SUITE
