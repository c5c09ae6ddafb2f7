// SPDX-License-Identifier: BSL-1.0
// token<T>: reset restores exactly, once, in the right context, through the right var.
#include <baton/token.hpp>

#include <baton/context.hpp>
#include <baton/context_var.hpp>
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

using baton::context;
using baton::context_var;

namespace {
template <class F>
std::string context_error_of(F&& f) {
  try {
    f();
  } catch (const baton::context_error& e) {
    return e.what();
  }
  return "no context_error";
}
}  // namespace

TEST_SUITE("token") {
  TEST_CASE("reset restores the previous value") {
    context().run([] {
      context_var<std::string> v("user");
      (void)v.set("ada");
      auto t = v.set("grace");
      v.reset(t);
      CHECK(v.get() == "ada");
    });
  }

  TEST_CASE("reset restores the absence of a value") {
    context().run([] {
      context_var<int> v("n", 9);
      auto t = v.set(1);
      v.reset(t);
      CHECK(v.get() == 9);  // back to the default: no value in the context
      CHECK_FALSE(baton::copy_context().contains(v));
    });
  }

  TEST_CASE("old_value is the value before the set, nullopt for none") {
    context().run([] {
      context_var<int> v("n");
      auto t1 = v.set(1);
      auto t2 = v.set(2);
      CHECK_FALSE(t1.old_value().has_value());
      CHECK(t2.old_value() == 1);
      CHECK(&t2.var() == &v);
    });
  }

  TEST_CASE("reset after later sets of other vars restores only this var") {
    context().run([] {
      context_var<int> a("a");
      context_var<int> b("b");
      auto t = a.set(1);
      (void)b.set(2);
      (void)a.set(3);
      a.reset(t);
      CHECK_FALSE(a.try_get().has_value());
      CHECK(b.get() == 2);
    });
  }

  TEST_CASE("resets in reverse order unwind every set") {
    context().run([] {
      context_var<int> v("n");
      std::vector<baton::token<int>> tokens;
      for (int i = 0; i < 50; ++i) tokens.push_back(v.set(i));
      for (int i = 49; i >= 1; --i) {
        v.reset(tokens[i]);
        CHECK(v.get() == i - 1);
      }
      v.reset(tokens[0]);
      CHECK_FALSE(v.try_get().has_value());
    });
  }

  TEST_CASE("reset after other vars changed, and their roots were freed, restores only its var") {
    // The fast path (restore the whole old map) holds only while the root is the very node the
    // set made. Here that node is freed and new roots are made, which may reuse its address.
    context().run([] {
      context_var<int> a("a");
      context_var<int> b("b");
      context_var<int> c("c");
      auto ta = a.set(1);
      for (int i = 0; i < 64; ++i) {
        auto tb = b.set(i);  // dropped without reset: b keeps i
        (void)tb;
        (void)c.set(i);
      }
      a.reset(ta);
      CHECK_FALSE(a.try_get().has_value());
      CHECK(b.get() == 63);
      CHECK(c.get() == 63);
    });
  }

  TEST_CASE("after an out-of-order reset the remaining token still restores its var") {
    context().run([] {
      context_var<int> a("a");
      context_var<int> b("b");
      auto ta = a.set(1);
      auto tb = b.set(2);
      a.reset(ta);  // not the newest set: a new map without a
      CHECK_FALSE(a.try_get().has_value());
      CHECK(b.get() == 2);
      b.reset(tb);
      CHECK_FALSE(b.try_get().has_value());
      CHECK_FALSE(a.try_get().has_value());
    });
  }

  TEST_CASE("resetting a token twice throws context_error naming the var and changes nothing") {
    context().run([] {
      context_var<int> v("retries");
      auto t = v.set(1);
      v.reset(t);
      (void)v.set(5);
      const std::string msg = context_error_of([&] { v.reset(t); });
      CHECK(msg.find("retries") != std::string::npos);
      CHECK(msg.find("already been used") != std::string::npos);
      CHECK(v.get() == 5);
    });
  }

  TEST_CASE("a copy of a token is the same token") {
    context().run([] {
      context_var<int> v("n");
      auto t = v.set(1);
      auto copy = t;
      v.reset(copy);
      CHECK(t.used());
      CHECK_THROWS_AS(v.reset(t), baton::context_error);
    });
  }

  TEST_CASE("resetting through another var throws context_error naming both") {
    context().run([] {
      context_var<int> a("alpha");
      context_var<int> b("beta");
      auto t = a.set(1);
      const std::string msg = context_error_of([&] { b.reset(t); });
      CHECK(msg.find("alpha") != std::string::npos);
      CHECK(msg.find("beta") != std::string::npos);
      CHECK(a.get() == 1);
      CHECK_FALSE(t.used());
    });
  }

  TEST_CASE("resetting in another context throws context_error and changes nothing") {
    context_var<int> v("tenant");
    context a;
    context b;
    auto t = a.run([&] { return v.set(1); });
    b.run([&] { (void)v.set(2); });
    const std::string msg = context_error_of([&] { b.run([&] { v.reset(t); }); });
    CHECK(msg.find("different context") != std::string::npos);
    CHECK(msg.find("tenant") != std::string::npos);
    CHECK(b.get(v) == 2);
    CHECK(a.get(v) == 1);
    a.run([&] { v.reset(t); });
    CHECK_FALSE(a.contains(v));
  }

  TEST_CASE("a token cannot be reset in a copy of its context") {
    context_var<int> v("n");
    context a;
    auto t = a.run([&] { return v.set(1); });
    context c = a.copy();
    CHECK_THROWS_AS(c.run([&] { v.reset(t); }), baton::context_error);
  }

  TEST_CASE("the token keeps the old value alive for old_value") {
    context().run([] {
      context_var<std::string> v("s");
      (void)v.set(std::string(100, 'x'));
      auto t = v.set("y");
      (void)v.set("z");
      CHECK(t.old_value() == std::string(100, 'x'));
    });
  }

}  // TEST_SUITE
