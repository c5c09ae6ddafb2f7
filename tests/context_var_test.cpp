// SPDX-License-Identifier: BSL-1.0
// context_var<T>: get/set/reset/defaults on the calling thread's current context.
#include <baton/context_var.hpp>

#include <baton/context.hpp>
#include <baton/run.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <doctest/doctest.h>
#include <support/counted.hpp>
#include <support/thread_mirror.hpp>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using baton::context;
using baton::context_var;

TEST_SUITE("context_var") {
  TEST_CASE("a var without a value or default throws lookup_error naming the var") {
    context().run([] {
      context_var<int> v("request_id");
      try {
        (void)v.get();
        FAIL("get() did not throw");
      } catch (const baton::lookup_error& e) {
        CHECK(std::string(e.what()).find("request_id") != std::string::npos);
      }
    });
  }

  TEST_CASE("get returns the default when nothing is set") {
    context().run([] {
      context_var<std::string> v("locale", "en");
      CHECK(v.get() == "en");
      CHECK(v.try_get() == "en");
    });
  }

  TEST_CASE("get(fallback) wins over the var's default") {
    context().run([] {
      context_var<int> v("n", 1);
      CHECK(v.get(7) == 7);
      (void)v.set(3);
      CHECK(v.get(7) == 3);
    });
  }

  TEST_CASE("try_get returns nullopt for a var with no value and no default") {
    context().run([] {
      context_var<int> v("n");
      CHECK_FALSE(v.try_get().has_value());
    });
  }

  TEST_CASE("set makes the value visible to get") {
    context().run([] {
      context_var<std::string> v("user");
      (void)v.set("ada");
      CHECK(v.get() == "ada");
      (void)v.set("grace");
      CHECK(v.get() == "grace");
    });
  }

  TEST_CASE("set works in a plain thread's implicit context") {
    std::thread([] {
      context_var<int> v("n");
      (void)v.set(5);
      CHECK(v.get() == 5);
    }).join();
  }

  TEST_CASE("each plain thread has its own implicit context") {
    context_var<int> v("n");
    std::thread([&] {
      (void)v.set(1);
      CHECK(v.get() == 1);
    }).join();
    std::thread([&] { CHECK_FALSE(v.try_get().has_value()); }).join();
  }

  TEST_CASE("values of many types: strings, shared_ptrs, structs, doubles") {
    context().run([] {
      struct point {
        int x;
        std::string label;
      };
      context_var<std::shared_ptr<int>> p("p");
      context_var<point> s("s");
      context_var<double> d("d");
      auto sp = std::make_shared<int>(42);
      (void)p.set(sp);
      (void)s.set(point{3, "three"});
      (void)d.set(2.5);
      CHECK(*p.get() == 42);
      CHECK(sp.use_count() == 2);
      CHECK(s.get().label == "three");
      CHECK(d.get() == 2.5);
    });
  }

  TEST_CASE("boxed values of every size and alignment come back whole, also freed elsewhere") {
    // Boxes live in line blocks (allocate_lines): a value aligned beyond a line takes a heap
    // block of its alignment (UBSan checks the member accesses), a big one a heap block.
    struct alignas(128) wide {
      int n;
    };
    struct alignas(64) line_wide {
      char c[100];
    };
    struct big {
      char bytes[5000];
    };
    context ctx;
    context_var<wide> w("w");
    context_var<line_wide> l("l");
    context_var<big> b("b");
    ctx.run([&] {
      (void)w.set(wide{7});
      line_wide lw{};
      lw.c[99] = 'z';
      (void)l.set(lw);
      big bg{};
      bg.bytes[4999] = 'q';
      (void)b.set(bg);
      CHECK(w.get().n == 7);
      CHECK(l.get().c[99] == 'z');
      CHECK(b.get().bytes[4999] == 'q');
    });
    // The last reference dropped on another thread: its blocks go back to that thread's lists.
    std::thread([c = std::move(ctx)]() mutable { c = context(); }).join();
  }

  TEST_CASE("a value is released when the last context holding it goes away") {
    using baton_test::counted;
    const int before = counted::live;
    {
      context ctx;
      context_var<counted> v("c");
      ctx.run([&] { (void)v.set(counted(1)); });
      CHECK(counted::live == before + 1);
      context snapshot = ctx.copy();
      ctx = context();
      CHECK(counted::live == before + 1);  // the snapshot still holds it
    }
    CHECK(counted::live == before);
  }

  TEST_CASE("a destroyed var's values are released with the context, never dangle") {
    using baton_test::counted;
    const int before = counted::live;
    context ctx;
    {
      context_var<counted> v("short-lived");
      ctx.run([&] { (void)v.set(counted(7)); });
    }
    CHECK(ctx.size() == 1);
    CHECK(counted::live == before + 1);
    ctx = context();
    CHECK(counted::live == before);
  }

  TEST_CASE("a var created later never sees an older var's values") {
    context ctx;
    for (int i = 0; i < 100; ++i) {
      context_var<int> v("v");
      ctx.run([&] {
        CHECK_FALSE(v.try_get().has_value());
        (void)v.set(i);
      });
    }
    CHECK(ctx.size() == 100);
  }

  TEST_CASE("a thousand vars each keep their own value") {
    context().run([] {
      std::vector<std::unique_ptr<context_var<int>>> vars;
      for (int i = 0; i < 1000; ++i) {
        vars.push_back(std::make_unique<context_var<int>>("v" + std::to_string(i)));
        (void)vars.back()->set(i * 3);
      }
      for (int i = 0; i < 1000; ++i) CHECK(vars[i]->get() == i * 3);
      CHECK(baton::copy_context().size() == 1000);
    });
  }

  TEST_CASE("the var's name is what it was given") {
    context_var<int> v("deadline");
    CHECK(v.name() == "deadline");
  }

}  // TEST_SUITE

TEST_SUITE("context_var model") {
  TEST_CASE("random sets and resets over 3000 vars match a plain map, snapshots included") {
    context().run([] {
      constexpr int n = 3000;  // ids span several trie levels
      std::vector<std::unique_ptr<context_var<std::string>>> vars;
      for (int i = 0; i < n; ++i)
        vars.push_back(std::make_unique<context_var<std::string>>(std::to_string(i)));
      std::vector<std::optional<std::string>> model(n);
      std::vector<std::pair<int, baton::token<std::string>>> tokens;
      std::vector<std::pair<context, std::vector<std::optional<std::string>>>> snapshots;
      std::uint64_t x = 88172645463325252ull;  // xorshift: deterministic
      auto next = [&] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
      };
      for (int step = 0; step < 20000; ++step) {
        const int v = static_cast<int>(next() % n);
        if (next() % 3 != 0 || tokens.empty()) {
          std::string value = std::to_string(step);
          tokens.emplace_back(v, vars[v]->set(value));
          model[v] = value;
        } else {  // undo some earlier set (newest first half the time: the fast path)
          const std::size_t k = next() % 2 == 0 ? tokens.size() - 1 : next() % tokens.size();
          std::swap(tokens[k], tokens.back());
          auto [var, t] = std::move(tokens.back());
          tokens.pop_back();
          model[var] = t.old_value();
          vars[var]->reset(t);
        }
        if (step % 2000 == 0) snapshots.emplace_back(baton::copy_context(), model);
      }
      std::size_t set_count = 0;
      for (int i = 0; i < n; ++i) {
        CHECK(vars[i]->try_get() == model[i]);
        set_count += model[i].has_value();
      }
      CHECK(baton::copy_context().size() == set_count);
      for (auto& [snap, expected] : snapshots) {
        for (int i = 0; i < n; i += 7) CHECK(snap.get(*vars[i]) == expected[i]);
      }
    });
  }

}  // TEST_SUITE

TEST_SUITE("context_var inline values") {
  TEST_CASE("small trivially copyable values without a default constructor are stored inline") {
    struct no_default {
      explicit no_default(int v) : x(v) {}
      int x;
    };
    context().run([] {
      context_var<std::chrono::steady_clock::time_point> deadline("deadline");
      context_var<no_default> nd("nd");
      const auto now = std::chrono::steady_clock::now();
      (void)deadline.set(now);
      (void)nd.set(no_default(3));
      CHECK(deadline.get() == now);
      CHECK(nd.get().x == 3);
      // The claim itself: each value sits in its map slot, with no value_box behind it.
      namespace d = baton::detail;
      for (const d::var_key key : {d::access::key(deadline), d::access::key(nd)}) {
        const d::slot* s = d::find(d::current_cell->root, key);
        REQUIRE(s != nullptr);
        CHECK((s->key & d::boxed_bit) == 0);
      }
      int inline_x = 0;  // the bytes of no_default(3), in the slot itself
      std::memcpy(&inline_x, &d::find(d::current_cell->root, d::access::key(nd))->bits,
                  sizeof inline_x);
      CHECK(inline_x == 3);
    });
  }

}  // TEST_SUITE

TEST_SUITE("context_var flow") {
  TEST_CASE("a var flows always unless its options say otherwise, and flow() tells which") {
    context_var<int> plain("plain");
    context_var<int> always("always", {.flow = baton::inherit::always});
    context_var<int> tasks("tasks", {.flow = baton::inherit::tasks});
    context_var<int> never("never", 5, {.flow = baton::inherit::never});
    CHECK(plain.flow() == baton::inherit::always);
    CHECK(always.flow() == baton::inherit::always);
    CHECK(tasks.flow() == baton::inherit::tasks);
    CHECK(never.flow() == baton::inherit::never);
    CHECK(never.get() == 5);
  }

  TEST_CASE("vars of every flow hold their own values side by side, 100 of each") {
    std::vector<std::unique_ptr<context_var<int>>> vars;
    for (int i = 0; i < 300; ++i) {
      const auto flow = static_cast<baton::inherit>(i % 3);
      vars.push_back(std::make_unique<context_var<int>>("v" + std::to_string(i),
                                                        baton::var_options{.flow = flow}));
    }
    context().run([&] {
      for (int i = 0; i < 300; ++i) (void)vars[i]->set(i);
      for (int i = 0; i < 300; ++i) CHECK(vars[i]->get() == i);
    });
  }

  TEST_CASE("explicit copies copy every var, whatever its flow") {
    context_var<int> tasks("tasks", {.flow = baton::inherit::tasks});
    context_var<std::string> never("never", {.flow = baton::inherit::never});
    context_var<int> always("always");
    context ctx;
    ctx.run([&] {
      (void)tasks.set(1);
      (void)never.set("deadline");
      (void)always.set(3);
      const context snap = baton::copy_context();
      CHECK(snap.get(tasks) == 1);
      CHECK(snap.get(never) == "deadline");
      CHECK(snap.get(always) == 3);
    });
    const context copy = ctx.copy();
    CHECK(copy.get(tasks) == 1);
    CHECK(copy.get(never) == "deadline");
    CHECK(copy.get(always) == 3);
    CHECK(copy.size() == 3);
  }
}  // TEST_SUITE

TEST_SUITE("context_var on_switch") {
  TEST_CASE("a mirror follows set and reset, with nullptr when the context has no value") {
    struct tag;
    using mirror = baton_test::thread_mirror<tag, std::string>;
    context_var<std::string> span("span", "default-not-counted");
    mirror::install(span);
    CHECK(mirror::calls == 0);  // this thread's context has no value: nothing changed
    context().run([&] {
      auto t1 = span.set("a");
      CHECK(mirror::seen == "a");
      auto t2 = span.set("b");
      CHECK(mirror::seen == "b");
      span.reset(t2);
      CHECK(mirror::seen == "a");
      span.reset(t1);
      CHECK_FALSE(mirror::seen.has_value());
      CHECK(mirror::calls == 4);
    });
  }

  TEST_CASE("a mirror is not called when the value did not change") {
    struct tag;
    using mirror = baton_test::thread_mirror<tag, int>;
    context_var<int> v("v");
    context_var<int> other("other");
    mirror::install(v);
    context().run([&] {
      (void)v.set(7);
      CHECK(mirror::calls == 1);
      (void)other.set(1);  // another var: the root changes, v's value does not
      (void)v.set(7);      // the same inline value again
      CHECK(mirror::calls == 1);
      const context same = baton::copy_context();
      same.copy().run([] {});  // entering and leaving a context with the same value
      CHECK(mirror::calls == 1);
    });
  }

  TEST_CASE("tasks taking turns call the mirror only when their values of the var differ") {
    // Two tasks on one loop thread, each with a map of its own (each sets the var itself), take
    // 400 turns. Equal values: a switch compares and calls nothing (a few calls remain: each
    // task's set, main's empty context, and the loop's Asio polls, each at most once per 64
    // steps, which run in the empty context). Different values: every switch calls.
    struct tag;
    using mirror = baton_test::thread_mirror<tag, int>;
    context_var<int> v("v");
    mirror::install(v);
    auto calls_for = [&](int a, int b) {
      int calls = 0;
      bool agreed = true;
      baton::run([&]() -> baton::task<> {
        auto turns = [](context_var<int>& var, int value, bool& ok) -> baton::task<> {
          (void)var.set(value);
          for (int i = 0; i < 200; ++i) {
            co_await baton::sleep(std::chrono::milliseconds(0));
            ok = ok && mirror::seen == var.get();
          }
        };
        const int before = mirror::calls;
        auto first = baton::spawn(turns(v, a, agreed));
        auto second = baton::spawn(turns(v, b, agreed));
        co_await first;
        co_await second;
        calls = mirror::calls - before;
      }());
      CHECK(agreed);
      return calls;
    };
    CHECK(calls_for(5, 5) <= 20);
    CHECK(calls_for(5, 6) >= 400);
  }

  TEST_CASE("context::run switches the mirror before its body runs and back when it leaves") {
    struct tag;
    using mirror = baton_test::thread_mirror<tag, int>;
    context_var<int> v("v");
    mirror::install(v);
    context outer;
    context inner;
    inner.run([&] { (void)v.set(2); });
    outer.run([&] {
      (void)v.set(1);
      inner.run([&] { CHECK(mirror::seen == 2); });
      CHECK(mirror::seen == 1);
      try {
        inner.run([]() -> int { throw std::runtime_error("out"); });
      } catch (const std::runtime_error&) {
      }
      CHECK(mirror::seen == 1);  // also when the body throws
    });
    CHECK_FALSE(mirror::seen.has_value());
  }

  TEST_CASE("each thread's mirror follows that thread's context") {
    struct tag;
    using mirror = baton_test::thread_mirror<tag, int>;
    context_var<int> v("v");
    mirror::install(v);
    std::vector<std::thread> threads;
    std::vector<int> seen(4, -1);
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&, i] {
        context().run([&] {
          (void)v.set(i);
          seen[static_cast<std::size_t>(i)] = mirror::seen.value_or(-1);
        });
        if (mirror::seen.has_value()) seen[static_cast<std::size_t>(i)] = -2;
      });
    }
    for (auto& t : threads) t.join();
    CHECK(seen == std::vector<int>{0, 1, 2, 3});
  }

  TEST_CASE("installing a mirror reports the current value at once") {
    struct tag;
    using mirror = baton_test::thread_mirror<tag, int>;
    context_var<int> v("v");
    context().run([&] {
      (void)v.set(9);
      mirror::install(v);
      CHECK(mirror::seen == 9);
      CHECK(mirror::calls == 1);
    });
  }

  TEST_CASE("maps that differed only in a var before it had a mirror are told apart after") {
    // a and b derive from one map by a set of `late` while only `early` has a mirror, so they
    // agree on every mirrored var then. Once `late` has a mirror they no longer do: a switch
    // between them must report late's value each time.
    struct early_tag;
    struct late_tag;
    using early_mirror = baton_test::thread_mirror<early_tag, int>;
    using late_mirror = baton_test::thread_mirror<late_tag, int>;
    context_var<int> early("early");
    context_var<int> late("late");
    early_mirror::install(early);
    context parent;
    parent.run([&] { (void)early.set(1); });
    context a = parent.copy();
    context b = parent.copy();
    a.run([&] { (void)late.set(10); });
    b.run([&] { (void)late.set(20); });
    late_mirror::install(late);
    a.run([&] {
      for (int i = 0; i < 3; ++i) {
        CHECK(late_mirror::seen == 10);
        b.run([&] {
          CHECK(late_mirror::seen == 20);
          CHECK(early_mirror::seen == 1);
        });
      }
      CHECK(late_mirror::seen == 10);
    });
    parent.run([&] { CHECK_FALSE(late_mirror::seen.has_value()); });
  }

  TEST_CASE(
      "a set of an unmirrored var keeps the mirror quiet; a set of the mirrored one does not") {
    struct tag;
    using mirror = baton_test::thread_mirror<tag, int>;
    context_var<int> v("v");
    context_var<int> other("other");
    mirror::install(v);
    context parent;
    parent.run([&] { (void)v.set(3); });
    context derived = parent.copy();
    derived.run([&] { (void)other.set(4); });  // the same value of v under another map
    context changed = parent.copy();
    changed.run([&] { (void)v.set(5); });
    parent.run([&] {
      const int before = mirror::calls;
      for (int i = 0; i < 10; ++i) {
        derived.run([&] { CHECK(mirror::seen == 3); });
        CHECK(mirror::seen == 3);
      }
      CHECK(mirror::calls == before);
      changed.run([&] { CHECK(mirror::seen == 5); });
      CHECK(mirror::seen == 3);
      CHECK(mirror::calls == before + 2);
    });
  }

  TEST_CASE(
      "maps given one stamp for an equal value are told apart once another var has a mirror") {
    // a and b each set v = 1 themselves (two roots), and differ in `late`, unmirrored. Switching
    // between them changes nothing, so the sync gives both roots one stamp; that stamp speaks
    // for v alone, and once late has a mirror every switch must report late's value.
    struct v_tag;
    struct late_tag;
    using v_mirror = baton_test::thread_mirror<v_tag, int>;
    using late_mirror = baton_test::thread_mirror<late_tag, int>;
    context_var<int> v("v");
    context_var<int> late("late");
    v_mirror::install(v);
    context a;
    context b;
    a.run([&] {
      (void)late.set(10);
      (void)v.set(1);
    });
    b.run([&] {
      (void)late.set(20);
      (void)v.set(1);
    });
    const int before = v_mirror::calls;
    a.run([&] {
      for (int i = 0; i < 3; ++i) b.run([] {});
    });
    CHECK(v_mirror::calls == before + 2);  // into a and back out; a <-> b reported nothing
    late_mirror::install(late);
    a.run([&] {
      for (int i = 0; i < 3; ++i) {
        CHECK(late_mirror::seen == 10);
        b.run([&] { CHECK(late_mirror::seen == 20); });
      }
    });
  }

  TEST_CASE("on_switch takes a lambda with state, a function pointer or a std::function") {
    static int pointer_seen = 0;
    context_var<int> a("a");
    context_var<int> b("b");
    context_var<int> c("c");
    int changes = 0;
    a.on_switch([changes](const int* p) mutable {  // called as std::function would: non-const
      ++changes;
      pointer_seen = p != nullptr ? *p + changes * 100 : 0;
    });
    int via_function = 0;
    b.on_switch(std::function<void(const int*)>(
        [&](const int* p) { via_function = p != nullptr ? *p : 0; }));
    void (*fn)(const int*) = [](const int* p) { pointer_seen = p != nullptr ? -*p : 0; };
    c.on_switch(fn);
    context().run([&] {
      (void)a.set(1);
      CHECK(pointer_seen == 1 + 100);  // the lambda's own count survives between calls
      (void)a.set(2);
      CHECK(pointer_seen == 2 + 200);
      (void)b.set(5);
      CHECK(via_function == 5);
      (void)c.set(3);
      CHECK(pointer_seen == -3);
    });
  }

  TEST_CASE("on_switch with an empty function throws context_error naming the var") {
    context_var<int> v("locale");
    void (*null_fn)(const int*) = nullptr;
    for (int form = 0; form < 3; ++form) {
      try {
        if (form == 0) v.on_switch(nullptr);
        if (form == 1) v.on_switch(null_fn);
        if (form == 2) v.on_switch(std::function<void(const int*)>());
        FAIL("an empty on_switch did not throw");
      } catch (const baton::context_error& e) {
        CHECK(std::string(e.what()).find("'locale'") != std::string::npos);
        CHECK(std::string(e.what()).find("needs a function") != std::string::npos);
      }
    }
    v.on_switch([](const int*) {});  // nothing was installed by the failed calls
  }

  TEST_CASE("a second mirror for the same var throws context_error naming the var") {
    context_var<int> v("trace_id");
    v.on_switch([](const int*) {});
    try {
      v.on_switch([](const int*) {});
      FAIL("a second on_switch did not throw");
    } catch (const baton::context_error& e) {
      CHECK(std::string(e.what()).find("trace_id") != std::string::npos);
      CHECK(std::string(e.what()).rfind("baton:", 0) == 0);
    }
    CHECK_THROWS_AS(v.on_switch(nullptr), baton::context_error);
  }

  TEST_CASE("a destroyed var's mirror is no longer called") {
    int calls = 0;
    context ctx;
    {
      context_var<int> v("v");
      v.on_switch([&](const int*) { ++calls; });
      ctx.run([&] { (void)v.set(1); });
      CHECK(calls == 2);  // entering (1) and leaving (nullptr)
    }
    ctx.run([] {});
    CHECK(calls == 2);
  }
}  // TEST_SUITE
