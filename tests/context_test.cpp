// SPDX-License-Identifier: BSL-1.0
// context: run, snapshots, isolation, misuse.
#include <baton/context.hpp>

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <thread>

using baton::context;
using baton::context_var;

TEST_SUITE("context") {
  TEST_CASE("a new context is empty") {
    context_var<int> v("n");
    context ctx;
    CHECK(ctx.size() == 0);
    CHECK_FALSE(ctx.contains(v));
    CHECK_FALSE(ctx.get(v).has_value());
  }

  TEST_CASE("set inside run changes that context and not the caller's") {
    context_var<int> v("n");
    context ctx;
    context().run([&] {
      (void)v.set(1);
      ctx.run([&] {
        CHECK_FALSE(v.try_get().has_value());
        (void)v.set(2);
        CHECK(v.get() == 2);
      });
      CHECK(v.get() == 1);
    });
    CHECK(ctx.get(v) == 2);
  }

  TEST_CASE("run forwards arguments and returns the result") {
    context ctx;
    std::string s = "abc";
    const auto n = ctx.run([](const std::string& x, int k) { return x.size() + k; }, s, 4);
    CHECK(n == 7);
    int target = 0;
    int& ref = ctx.run([&]() -> int& { return target; });
    CHECK(&ref == &target);
  }

  TEST_CASE("run restores the previous context when the function throws") {
    context_var<int> v("n");
    context outer;
    context inner;
    outer.run([&] {
      (void)v.set(1);
      CHECK_THROWS_AS(inner.run([&] {
        (void)v.set(2);
        throw std::runtime_error("boom");
      }),
                      std::runtime_error);
      CHECK(v.get() == 1);
    });
    CHECK(inner.get(v) == 2);
    inner.run([] {});  // left properly: can be entered again
  }

  TEST_CASE("running a context that is already entered throws context_error") {
    context ctx;
    ctx.run([&] {
      try {
        ctx.run([] {});
        FAIL("entered twice");
      } catch (const baton::context_error& e) {
        CHECK(std::string(e.what()).find("already entered") != std::string::npos);
      }
    });
  }

  TEST_CASE("a context entered on another thread cannot be entered or read here") {
    context_var<int> v("n");
    context ctx;
    std::atomic<int> stage{0};
    std::thread other([&] {
      ctx.run([&] {
        (void)v.set(1);
        stage = 1;
        while (stage.load() != 2) std::this_thread::yield();
      });
    });
    while (stage.load() != 1) std::this_thread::yield();
    CHECK_THROWS_AS(ctx.run([] {}), baton::context_error);
    CHECK_THROWS_AS((void)ctx.get(v), baton::context_error);
    stage = 2;
    other.join();
    CHECK(ctx.get(v) == 1);
  }

  TEST_CASE("copy is a snapshot: later sets on either side are invisible to the other") {
    context_var<int> v("n");
    context a;
    a.run([&] { (void)v.set(1); });
    context b = a.copy();
    a.run([&] { (void)v.set(2); });
    b.run([&] { (void)v.set(3); });
    CHECK(a.get(v) == 2);
    CHECK(b.get(v) == 3);
  }

  TEST_CASE("copying a context object copies the handle, not the contents") {
    context_var<int> v("n");
    context a;
    context alias = a;
    alias.run([&] { (void)v.set(1); });
    CHECK(a.get(v) == 1);
    CHECK(a == alias);
    CHECK_FALSE(a == a.copy());
  }

  TEST_CASE("copy_context snapshots the current context") {
    context_var<int> v("n");
    context().run([&] {
      (void)v.set(1);
      context snap = baton::copy_context();
      (void)v.set(2);
      CHECK(snap.get(v) == 1);
      snap.run([&] { CHECK(v.get() == 1); });
    });
  }

  TEST_CASE("copy_context on a fresh thread is empty") {
    std::thread([] { CHECK(baton::copy_context().size() == 0); }).join();
  }

  TEST_CASE("get on a context ignores the var's default") {
    context_var<int> v("n", 5);
    context ctx;
    CHECK_FALSE(ctx.get(v).has_value());
    ctx.run([&] { CHECK(v.get() == 5); });
  }

  TEST_CASE("size counts vars with a value, not sets") {
    context_var<int> a("a");
    context_var<int> b("b");
    context ctx;
    ctx.run([&] {
      (void)a.set(1);
      (void)a.set(2);
      (void)b.set(3);
    });
    CHECK(ctx.size() == 2);
  }

  TEST_CASE("nested runs of different contexts restore in order") {
    context_var<int> v("n");
    context c1;
    context c2;
    c1.run([&] {
      (void)v.set(1);
      c2.run([&] {
        (void)v.set(2);
        c1.copy().run([&] { CHECK(v.get() == 1); });
        CHECK(v.get() == 2);
      });
      CHECK(v.get() == 1);
    });
  }

  TEST_CASE("a context can be read while this thread has it entered") {
    context_var<int> v("n");
    context ctx;
    ctx.run([&] {
      (void)v.set(4);
      CHECK(ctx.get(v) == 4);
      CHECK(ctx.size() == 1);
    });
  }

}  // TEST_SUITE
