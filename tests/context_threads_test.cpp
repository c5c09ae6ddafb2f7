// SPDX-License-Identifier: BSL-1.0
// Contexts under threads: what is documented as thread-safe, exercised (run under TSan in CI).
#include <baton/context.hpp>

#include <doctest/doctest.h>

#include "support/thread_mirror.hpp"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using baton::context;
using baton::context_var;

TEST_SUITE("context_threads") {
  TEST_CASE("threads running copies of one context see the snapshot and never each other") {
    context_var<std::string> user("user");
    context_var<int> worker("worker");
    context base;
    base.run([&] { (void)user.set("ada"); });
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t, snap = base.copy()]() mutable {
        snap.run([&] {
          for (int i = 0; i < 2000; ++i) {
            (void)worker.set(t * 100000 + i);
            if (user.get() != "ada" || worker.get() != t * 100000 + i) ++failures;
          }
        });
      });
    }
    for (auto& th : threads) th.join();
    CHECK(failures == 0);
    CHECK_FALSE(base.contains(worker));
  }

  TEST_CASE("many threads read one context concurrently while nobody has it entered") {
    context_var<int> v("n");
    context shared;
    shared.run([&] { (void)v.set(42); });
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 5000; ++i) {
          if (shared.get(v) != 42 || shared.size() != 1) ++wrong;
          context c = shared.copy();
          if (c.get(v) != 42) ++wrong;
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(wrong == 0);
  }

  TEST_CASE("one context entered by turns from several threads keeps every set") {
    context_var<int> v("counter", 0);
    context shared;
    std::vector<std::thread> threads;
    std::atomic<int> done{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        int mine = 0;
        while (mine < 500) {
          try {
            shared.run([&] { (void)v.set(v.get() + 1); });
            ++mine;
          } catch (const baton::context_error&) {
            std::this_thread::yield();  // another thread has it: try again
          }
        }
        ++done;
      });
    }
    for (auto& th : threads) th.join();
    CHECK(shared.get(v) == 2000);
  }

  TEST_CASE("handles and tokens are copied and dropped across threads safely") {
    context_var<std::shared_ptr<int>> v("p");
    context ctx;
    auto t = ctx.run([&] { return v.set(std::make_shared<int>(1)); });
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([ctx, t] {
        for (int k = 0; k < 1000; ++k) {
          context c = ctx;
          auto t2 = t;
          (void)c;
          (void)t2;
        }
      });
    }
    for (auto& th : threads) th.join();
    ctx.run([&] { v.reset(t); });
    CHECK_FALSE(ctx.contains(v));
  }

  TEST_CASE("vars are created and destroyed on many threads at once") {
    std::vector<std::thread> threads;
    std::atomic<int> wrong{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 300; ++i) {
          context_var<int> v("v" + std::to_string(t));
          if (v.try_get().has_value()) ++wrong;
          (void)v.set(i);
          if (v.get() != i) ++wrong;
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(wrong == 0);
  }

  TEST_CASE("threads switching between maps made before a mirror existed all report right") {
    // Maps made before the mirror carry no stamp for it; the first sync on any thread that
    // meets one gives it its own, and four threads do so at once here (TSan checks the race).
    struct tag;
    using mirror = baton_test::thread_mirror<tag, int>;
    context_var<int> v("v");
    context_var<int> other("other");
    std::vector<context> maps(8);
    for (int i = 0; i < 8; ++i) {
      maps[static_cast<std::size_t>(i)].run([&] {
        (void)v.set(i % 2);
        (void)other.set(i);
      });
    }
    mirror::install(v);
    std::vector<std::thread> threads;
    std::atomic<int> wrong{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int round = 0; round < 200; ++round) {
          const auto i = static_cast<std::size_t>((round + t) % 8);
          maps[i].copy().run([&] {
            if (mirror::seen != static_cast<int>(i % 2)) ++wrong;
            const auto j = (i + 1) % 8;
            maps[j].copy().run([&] {
              if (mirror::seen != static_cast<int>(j % 2)) ++wrong;
            });
            if (mirror::seen != static_cast<int>(i % 2)) ++wrong;
          });
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(wrong == 0);
  }

  TEST_CASE("threads giving maps with equal values one stamp still report every difference") {
    // Maps 0, 2, 4, 6 hold v = 0 and maps 1, 3, 5, 7 hold v = 1, each from a set of its own. A
    // switch between two maps of one class changes nothing, and the sync gives both one stamp;
    // four threads do so at once over shared roots (TSan checks the race). Then `other`, which
    // differs in every map, gets a mirror: the shared stamps speak for v alone, so every switch
    // must report other's value again.
    struct v_tag;
    struct other_tag;
    using v_mirror = baton_test::thread_mirror<v_tag, int>;
    using other_mirror = baton_test::thread_mirror<other_tag, int>;
    context_var<int> v("v");
    context_var<int> other("other");
    v_mirror::install(v);
    std::vector<context> maps(8);
    for (int i = 0; i < 8; ++i) {
      maps[static_cast<std::size_t>(i)].run([&] {
        (void)other.set(i);
        (void)v.set(i % 2);
      });
    }
    std::atomic<int> wrong{0};
    auto switch_around = [&](bool check_other) {
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
          for (int round = 0; round < 200; ++round) {
            // Steps of 2 stay in one class, then one step of 3 crosses to the other.
            const auto i = static_cast<std::size_t>((round * 2 + round / 4 + t) % 8);
            maps[i].copy().run([&] {
              if (v_mirror::seen != static_cast<int>(i % 2)) ++wrong;
              if (check_other && other_mirror::seen != static_cast<int>(i)) ++wrong;
              const auto j = (i + 2) % 8;
              maps[j].copy().run([&] {
                if (v_mirror::seen != static_cast<int>(j % 2)) ++wrong;
                if (check_other && other_mirror::seen != static_cast<int>(j)) ++wrong;
              });
              if (v_mirror::seen != static_cast<int>(i % 2)) ++wrong;
              if (check_other && other_mirror::seen != static_cast<int>(i)) ++wrong;
            });
          }
        });
      }
      for (auto& th : threads) th.join();
    };
    switch_around(false);
    other_mirror::install(other);
    switch_around(true);
    CHECK(wrong == 0);
  }

}  // TEST_SUITE
