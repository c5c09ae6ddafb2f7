// SPDX-License-Identifier: BSL-1.0
// bind_context and start_thread: the context travels per call.
#include <baton/bind_context.hpp>

#include <baton/baton.hpp>
#include <baton/context_executor.hpp>
#include <doctest/doctest.h>
#include <support/flow_vars.hpp>
#include <support/thread_mirror.hpp>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using baton::context;

namespace {
baton::context_var<std::string> user("user");
}  // namespace

TEST_SUITE("bind_context") {
  TEST_CASE("a bound callable sees the context captured at bind time, on another thread") {
    auto f = context().run([] {
      (void)user.set("ada");
      return baton::bind_context([] { return user.get("none"); });
    });
    std::string seen;
    std::thread([&] { seen = f(); }).join();
    CHECK(seen == "ada");
    CHECK(f() == "ada");  // and on this thread, whose own context has no user
    CHECK_FALSE(user.try_get());
  }

  TEST_CASE("every call runs in a fresh copy: sets do not carry over between calls") {
    auto f = context().run([] {
      (void)user.set("ada");
      return baton::bind_context([] {
        const std::string before = user.get();
        (void)user.set("changed");
        return before;
      });
    });
    CHECK(f() == "ada");
    CHECK(f() == "ada");
  }

  TEST_CASE("concurrent calls on several threads are independent") {
    auto f = context().run([] {
      (void)user.set("base");
      return baton::bind_context([](int k) {
        (void)user.set(std::to_string(k));
        std::this_thread::yield();
        return user.get() == std::to_string(k);
      });
    });
    std::atomic<int> bad{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&, t] {
        for (int i = 0; i < 500; ++i) bad += f(t * 1000 + i) ? 0 : 1;
      });
    }
    for (auto& t : ts) t.join();
    CHECK(bad == 0);
  }

  TEST_CASE("start_thread runs a jthread in a copy of the caller's context") {
    context().run([] {
      (void)user.set("ada");
      std::promise<std::string> p;
      auto fut = p.get_future();
      {
        auto t = baton::start_thread([&p](std::stop_token) { p.set_value(user.get()); });
      }
      CHECK(fut.get() == "ada");
    });
  }

}  // TEST_SUITE

TEST_SUITE("bind_context and flow") {
  TEST_CASE("bind_context, start_thread and context_executor carry always vars only") {
    baton_test::flow_vars v;
    asio::thread_pool pool(1);
    context().run([&] {
      v.set_all();
      auto bound = baton::bind_context([&] { return v.seen(); });
      CHECK(bound() == baton_test::to_a_thread);
      CHECK(bound.snapshot().size() == 1);
      std::string from_thread;
      baton::start_thread([&] { from_thread = v.seen(); }).join();
      CHECK(from_thread == baton_test::to_a_thread);
      std::promise<std::string> job;
      asio::post(baton::make_context_executor(pool.get_executor()),
                 [&] { job.set_value(v.seen()); });
      CHECK(job.get_future().get() == baton_test::to_a_thread);
      CHECK(v.seen() == baton_test::everything);
    });
  }

  TEST_CASE("a bound call that throws restores the caller's context and its mirror") {
    struct tag;
    using mirror = baton_test::thread_mirror<tag, std::string>;
    mirror::install(user);
    context().run([&] {
      (void)user.set("caller");
      auto bound = context().run([] {
        (void)user.set("binder");
        return baton::bind_context([]() -> int {
          (void)user.set("inside");
          throw std::runtime_error("bound");
        });
      });
      CHECK(mirror::seen == "caller");
      CHECK_THROWS_AS(bound(), std::runtime_error);
      CHECK(user.get() == "caller");
      CHECK(mirror::seen == "caller");
    });
    CHECK_FALSE(mirror::seen.has_value());
  }
}  // TEST_SUITE
