// SPDX-License-Identifier: BSL-1.0
// The loop's timer wheel on its own, with made-up times: order, equal deadlines, sub-millisecond
// deadlines, far deadlines across levels, removal (also of a due entry), many timers.
#include "timer_wheel.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

using namespace std::chrono_literals;
using baton::detail::timer_node;
using baton::detail::timer_wheel;
using clock_type = std::chrono::steady_clock;

namespace {

const clock_type::time_point t0 = clock_type::now();

struct nodes {
  std::vector<std::unique_ptr<timer_node>> all;
  timer_node* make(clock_type::duration after) {
    all.push_back(std::make_unique<timer_node>());
    all.back()->deadline = t0 + after;
    return all.back().get();
  }
};

std::vector<timer_node*> take(timer_wheel& w, clock_type::duration at,
                              clock_type::time_point* next = nullptr) {
  std::vector<timer_wheel::entry> due;
  const auto n = w.take_due(t0 + at, due);
  if (next != nullptr) *next = n;
  std::vector<timer_node*> out;
  for (auto e : due) out.push_back(e.node());
  return out;
}

}  // namespace

TEST_SUITE("timer_wheel") {
  TEST_CASE("entries come out in deadline order and never before their deadline") {
    timer_wheel w(t0);
    nodes n;
    timer_node* c = n.make(30ms);
    timer_node* a = n.make(10ms);
    timer_node* b = n.make(20ms);
    for (timer_node* x : {c, a, b}) w.add(timer_wheel::entry::of(x));
    clock_type::time_point next;
    CHECK(take(w, 9ms, &next).empty());
    CHECK(next <= a->deadline);
    CHECK(take(w, 10ms) == std::vector<timer_node*>{a});
    CHECK(take(w, 35ms) == std::vector<timer_node*>{b, c});
    CHECK(w.size() == 0);
    CHECK(take(w, 1h, &next).empty());
    CHECK(next == clock_type::time_point::max());
  }

  TEST_CASE("equal deadlines come out in the order they were added") {
    timer_wheel w(t0);
    nodes n;
    std::vector<timer_node*> added;
    for (int i = 0; i < 10; ++i) added.push_back(n.make(5s));  // cascades through level 1
    for (timer_node* x : added) w.add(timer_wheel::entry::of(x));
    CHECK(take(w, 5s) == added);
  }

  TEST_CASE("a deadline inside a millisecond is kept to exactly") {
    timer_wheel w(t0);
    nodes n;
    timer_node* late = n.make(1500us);
    timer_node* early = n.make(1200us);
    w.add(timer_wheel::entry::of(late));
    w.add(timer_wheel::entry::of(early));
    clock_type::time_point next;
    CHECK(take(w, 1100us, &next).empty());
    CHECK(next == early->deadline);
    CHECK(take(w, 1300us, &next) == std::vector<timer_node*>{early});
    CHECK(next == late->deadline);  // the rest of the same millisecond
    CHECK(take(w, 1500us) == std::vector<timer_node*>{late});
  }

  TEST_CASE("far deadlines move down the levels and fire on time") {
    timer_wheel w(t0);
    nodes n;
    std::vector<timer_node*> expect;
    for (auto d : {clock_type::duration(100ms), clock_type::duration(70s), clock_type::duration(3h),
                   clock_type::duration(40 * 24h),
                   clock_type::duration(5 * 365 * 24h)}) {  // beyond the wheel's span
      expect.push_back(n.make(d));
    }
    for (auto it = expect.rbegin(); it != expect.rend(); ++it) w.add(timer_wheel::entry::of(*it));
    std::vector<timer_node*> got;
    clock_type::duration now{};
    for (int step = 0; step < 200 && got.size() < expect.size(); ++step) {
      clock_type::time_point next;
      for (timer_node* x : take(w, now, &next)) {
        CHECK(x->deadline <= t0 + now);  // never early
        got.push_back(x);
      }
      if (next == clock_type::time_point::max()) break;
      now = next - t0;  // jump to the next wake-up the wheel asks for, as the driver does
    }
    CHECK(got == expect);
  }

  TEST_CASE("a removed entry never comes out, and removing twice is refused") {
    timer_wheel w(t0);
    nodes n;
    timer_node* a = n.make(10ms);
    timer_node* b = n.make(10ms);
    timer_node* c = n.make(10ms);
    for (timer_node* x : {a, b, c}) w.add(timer_wheel::entry::of(x));
    CHECK(w.remove(timer_wheel::entry::of(b)));
    CHECK_FALSE(w.remove(timer_wheel::entry::of(b)));
    CHECK_FALSE(b->queued);
    CHECK(take(w, 10ms) == std::vector<timer_node*>{a, c});
    CHECK_FALSE(w.remove(timer_wheel::entry::of(a)));  // already taken: the fire wins
  }

  TEST_CASE("an entry removed when already due stays out, the others still fire") {
    timer_wheel w(t0);
    nodes n;
    timer_node* a = n.make(1ms);
    timer_node* b = n.make(2ms);
    w.add(timer_wheel::entry::of(a));
    w.add(timer_wheel::entry::of(b));
    CHECK(w.remove(timer_wheel::entry::of(a)));  // due at 5 ms, removed before the take
    CHECK(take(w, 5ms) == std::vector<timer_node*>{b});
    CHECK(w.size() == 0);
  }

  TEST_CASE("a deadline already past when added fires at the next take") {
    timer_wheel w(t0);
    nodes n;
    CHECK(take(w, 50ms).empty());  // the wheel has moved on
    timer_node* past = n.make(10ms);
    w.add(timer_wheel::entry::of(past));
    CHECK(take(w, 50ms) == std::vector<timer_node*>{past});
  }

  TEST_CASE("many timers with random deadlines, some removed, come out sorted and complete") {
    timer_wheel w(t0);
    nodes n;
    std::mt19937 rng(7);
    std::uniform_int_distribution<std::int64_t> us(0, 20'000'000);  // up to 20 s
    std::vector<timer_node*> kept;
    for (int i = 0; i < 20000; ++i) {
      timer_node* x = n.make(std::chrono::microseconds(us(rng)));
      w.add(timer_wheel::entry::of(x));
      if (i % 3 == 0) {
        CHECK(w.remove(timer_wheel::entry::of(x)));
      } else {
        kept.push_back(x);
      }
    }
    std::vector<timer_node*> got;
    clock_type::time_point last{};
    for (auto now = 0ms; now <= 21s; now += 7ms) {
      for (timer_node* x : take(w, now)) {
        CHECK(x->deadline >= last);
        CHECK(x->deadline <= t0 + now);
        last = x->deadline;
        got.push_back(x);
      }
    }
    CHECK(got.size() == kept.size());
    CHECK(w.size() == 0);
  }
}
