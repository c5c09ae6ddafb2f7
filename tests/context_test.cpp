// SPDX-License-Identifier: BSL-1.0
// context: run, snapshots, isolation, misuse.
#include <baton/context.hpp>

#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <future>
#include <memory>
#include <thread>
#include <vector>

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

TEST_SUITE("context as a mapping") {
  TEST_CASE("for_each visits every (var, value) pair with names, text and typed values") {
    context_var<int> n("n");
    context_var<std::string> user("user", {.flow = baton::inherit::never});
    context_var<double> unset("unset");
    context ctx;
    ctx.run([&] {
      (void)n.set(42);
      (void)user.set("ada");
    });
    std::map<std::string, std::string> text;
    std::optional<int> typed_n;
    std::optional<std::string> typed_user;
    int user_as_n = 0;
    ctx.for_each([&](const baton::context_entry& e) {
      text[e.name()] = e.value_text();
      if (e.is(n)) typed_n = e.get(n);
      if (e.is(user)) {
        typed_user = e.get(user);
        CHECK(e.flow() == baton::inherit::never);
      }
      if (e.get(n).has_value() && !e.is(n)) ++user_as_n;
      CHECK_FALSE(e.is(unset));
    });
    CHECK(text == std::map<std::string, std::string>{{"n", "42"}, {"user", "ada"}});
    CHECK(typed_n == 42);
    CHECK(typed_user == "ada");
    CHECK(user_as_n == 0);
  }

  TEST_CASE("for_each of a context of 100 vars visits each once, and skips destroyed vars") {
    std::vector<std::unique_ptr<context_var<int>>> vars;
    for (int i = 0; i < 100; ++i) {
      vars.push_back(std::make_unique<context_var<int>>("v" + std::to_string(i)));
    }
    context ctx;
    ctx.run([&] {
      for (int i = 0; i < 100; ++i) (void)vars[static_cast<std::size_t>(i)]->set(i);
    });
    vars.resize(60);
    std::map<std::string, int> seen;
    ctx.for_each([&](const baton::context_entry& e) { ++seen[e.name()]; });
    CHECK(seen.size() == 60);
    for (const auto& [name, count] : seen) CHECK(count == 1);
  }

  TEST_CASE("for_each's function may enter and change the context it visits") {
    context_var<int> n("n");
    context ctx;
    ctx.run([&] { (void)n.set(1); });
    int visits = 0;
    ctx.for_each([&](const baton::context_entry&) {
      ++visits;
      ctx.run([&] { (void)n.set(2); });
    });
    CHECK(visits == 1);
    CHECK(ctx.get(n) == 2);
  }

  TEST_CASE("equal_values compares contents; == stays identity") {
    context_var<int> n("n");
    context_var<std::string> user("user");
    context a;
    context b;
    CHECK(a.equal_values(b));
    CHECK_FALSE(a == b);
    a.run([&] {
      (void)n.set(1);
      (void)user.set("ada");
    });
    b.run([&] {
      (void)user.set("ada");  // another box holding an equal string, set in another order
      (void)n.set(1);
    });
    CHECK(a.equal_values(b));
    CHECK(b.equal_values(a));
    CHECK(a.equal_values(a.copy()));
    b.run([&] { (void)user.set("bob"); });
    CHECK_FALSE(a.equal_values(b));
    b.run([&] { (void)user.set("ada"); });
    CHECK(a.equal_values(b));
    b.run([&] { (void)n.set(2); });
    CHECK_FALSE(a.equal_values(b));
    context_var<int> other("other");
    context c = a.copy();
    c.run([&] { (void)other.set(0); });
    CHECK_FALSE(a.equal_values(c));
    CHECK_FALSE(c.equal_values(a));
  }

  TEST_CASE("equal_values and for_each refuse a context entered on another thread") {
    context_var<int> n("n");
    context ctx;
    std::promise<void> entered;
    std::promise<void> done;
    std::thread t([&] {
      ctx.run([&] {
        entered.set_value();
        done.get_future().wait();
      });
    });
    entered.get_future().wait();
    CHECK_THROWS_AS(ctx.for_each([](const baton::context_entry&) {}), baton::context_error);
    CHECK_THROWS_AS((void)ctx.equal_values(context()), baton::context_error);
    done.set_value();
    t.join();
  }
}  // TEST_SUITE
