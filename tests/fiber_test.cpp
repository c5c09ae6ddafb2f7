// SPDX-License-Identifier: BSL-1.0
// Stackful tasks: spawn_fiber and await(), under the same rules as coroutine tasks.
#include <baton/fiber.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/flow_vars.hpp>
#include <support/thread_mirror.hpp>

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;

namespace {

baton::context_var<std::string> user("user");

task<int> twice(int x) {
  co_await baton::sleep(0ms);
  co_return 2 * x;
}

task<> set_user(std::string u) {
  (void)user.set(std::move(u));
  co_return;
}

/// Uses `bytes` of the fiber's stack (a buffer the compiler must keep), across an await.
[[gnu::noinline]] std::size_t use_stack(std::size_t bytes, unsigned char seed) {
  auto* buf = static_cast<unsigned char*>(__builtin_alloca(bytes));
  for (std::size_t i = 0; i < bytes; i += 512) buf[i] = static_cast<unsigned char>(seed + i);
  baton::await(baton::sleep(0ms));  // another fiber runs (maybe on the stack this one left)
  std::size_t sum = 0;
  for (std::size_t i = 0; i < bytes; i += 512)
    sum += buf[i] == static_cast<unsigned char>(seed + i);
  return sum;
}

}  // namespace

TEST_SUITE("fiber") {
  TEST_CASE("a fiber awaits tasks, sleeps and Asio operations in blocking style") {
    run_task([]() -> task<> {
      auto h = baton::spawn_fiber([] {
        int a = baton::await(twice(21));
        baton::await(baton::sleep(1ms));
        boost::asio::steady_timer t(baton::current_executor(), 1ms);
        baton::await(t.async_wait(baton::use_task));
        return a;
      });
      CHECK(co_await h == 42);
    });
  }

  TEST_CASE("a fiber starts from a copy of the spawner's context and keeps it across awaits") {
    run_task([]() -> task<> {
      (void)user.set("ada");
      auto h = baton::spawn_fiber([] {
        const std::string first = user.get();
        (void)user.set("fiber");
        baton::await(baton::sleep(1ms));
        return first + "/" + user.get();
      });
      CHECK(co_await h == "ada/fiber");
      CHECK(user.get() == "ada");  // the fiber's set stayed in its own context
    });
  }

  TEST_CASE("await of a plain task in a fiber shares the fiber's context") {
    run_task([]() -> task<> {
      auto h = baton::spawn_fiber([] {
        baton::await(set_user("grace"));
        return user.get();
      });
      CHECK(co_await h == "grace");
    });
  }

  TEST_CASE("exceptions travel through await and out of the fiber") {
    run_task([]() -> task<> {
      auto h = baton::spawn_fiber([]() -> int {
        try {
          baton::await([]() -> task<int> {
            throw std::runtime_error("inner");
            co_return 0;
          }());
        } catch (const std::runtime_error& e) {
          throw std::logic_error(std::string("fiber saw ") + e.what());
        }
        return 0;
      });
      CHECK_THROWS_WITH_AS(co_await h, "fiber saw inner", std::logic_error);
    });
  }

  TEST_CASE("cancelling a fiber delivers cancelled_error at its await, which it may catch") {
    run_task([]() -> task<> {
      auto h = baton::spawn_fiber([] {
        try {
          baton::await(baton::sleep(std::chrono::hours(1)));
        } catch (const baton::cancelled_error&) {
          return std::string("cleaned up as ") + user.get("nobody");
        }
        return std::string("not cancelled");
      });
      co_await baton::sleep(1ms);
      h.cancel();
      CHECK(co_await h == "cleaned up as nobody");
    });
  }

  TEST_CASE("an uncaught cancellation finishes the fiber cancelled") {
    run_task([]() -> task<> {
      auto h = baton::spawn_fiber([] { baton::await(baton::sleep(std::chrono::hours(1))); });
      co_await baton::sleep(1ms);
      h.cancel();
      CHECK_THROWS_AS(co_await h, baton::cancelled_error);
      CHECK(h.cancelled());
    });
  }

  TEST_CASE("await outside a fiber throws runtime_error") {
    run_task([]() -> task<> {
      CHECK_THROWS_AS(baton::await(twice(1)), baton::runtime_error);
      co_return;
    });
  }

  TEST_CASE("finished fibers' stacks are reused, never handed to a fiber of another size") {
    // Stacks are cached by size. A 256 KiB fiber that got a cached 64 KiB stack would run into
    // the guard page with 200 KiB of locals; every fiber also finds its own bytes intact after
    // an await, while others ran on recycled stacks.
    bool all_intact = true;
    run_task([&]() -> task<> {
      for (int round = 0; round < 40; ++round) {
        std::vector<baton::task_handle<bool>> hs;
        for (int i = 0; i < 4; ++i) {
          const bool big = (round + i) % 2 == 0;
          const std::size_t bytes = std::size_t{big ? 200u : 40u} * 1024;
          const std::size_t stack = std::size_t{big ? 256u : 64u} * 1024;
          const auto seed = static_cast<unsigned char>(round * 4 + i);
          auto h =
              baton::spawn_fiber([bytes, seed] { return use_stack(bytes, seed) == bytes / 512; },
                                 {.stack_size = stack});
          hs.push_back(std::move(h));
        }
        for (auto& h : hs) all_intact = (co_await h) && all_intact;
      }
    });
    CHECK(all_intact);
  }

  TEST_CASE("many fibers on a threaded loop each keep their own context") {
    baton::run_options o;
    o.threads = 2;
    run_task(
        []() -> task<> {
          std::vector<baton::task_handle<bool>> hs;
          for (int i = 0; i < 200; ++i) {
            hs.push_back(baton::spawn_fiber(
                [i] {
                  (void)user.set(std::to_string(i));
                  bool ok = true;
                  for (int k = 0; k < 5; ++k) {
                    baton::await(baton::sleep(k % 2 == 0 ? 0ms : 1ms));
                    ok = ok && user.get() == std::to_string(i);
                  }
                  return ok;
                },
                {.stack_size = 64 * 1024}));
          }
          for (auto& h : hs) CHECK(co_await h);
        },
        o);
  }

}  // TEST_SUITE

TEST_SUITE("fiber misuse") {
  TEST_CASE("await inside context::run in a fiber throws context_error instead of suspending") {
    run_task([]() -> task<> {
      auto h = baton::spawn_fiber([] {
        baton::context other;
        bool refused = false;
        other.run([&] {
          try {
            baton::await(baton::sleep(0ms));
          } catch (const baton::context_error&) {
            refused = true;
          }
        });
        baton::await(baton::sleep(0ms));  // outside the run(): fine
        return refused;
      });
      CHECK(co_await h);
    });
  }

}  // TEST_SUITE

TEST_SUITE("fiber and flow") {
  TEST_CASE("spawn_fiber carries always and tasks vars, not never vars") {
    baton_test::flow_vars v;
    const std::string seen = run_task([&]() -> task<std::string> {
      v.set_all();
      co_return co_await baton::spawn_fiber([&] { return v.seen(); });
    });
    CHECK(seen == baton_test::to_a_task);
  }

  TEST_CASE("a fiber's mirror agrees with get() after every await, across two loop threads") {
    struct tag;
    using mirror = baton_test::thread_mirror<tag, int>;
    baton::context_var<int> n("n");
    mirror::install(n);
    std::atomic<int> wrong{0};
    baton::run_options opts;
    opts.threads = 2;
    run_task(
        [&]() -> task<> {
          std::vector<baton::task_handle<>> fibers;
          for (int f = 0; f < 8; ++f) {
            fibers.push_back(baton::spawn_fiber([&, f] {
              for (int i = 0; i < 50; ++i) {
                (void)n.set(f * 1000 + i);
                baton::await(baton::sleep(0ms));
                if (mirror::seen != n.get() || n.get() != f * 1000 + i) ++wrong;
              }
            }));
          }
          for (auto& h : fibers) co_await h;
        },
        opts);
    CHECK(wrong.load() == 0);
  }

  TEST_CASE("a fiber's values do not reach the next fiber on its reused stack") {
    baton::context_var<int> n("n");
    run_task([&]() -> task<> {
      co_await baton::spawn_fiber([&] {
        (void)n.set(1);
        baton::await(baton::sleep(0ms));
      });
      // The first fiber's stack is back in the cache; the next one of the same size takes it.
      CHECK(co_await baton::spawn_fiber([&] { return n.get(-1); }) == -1);
    });
  }
}  // TEST_SUITE
