// SPDX-License-Identifier: BSL-1.0
// A loop's timers: the hierarchical wheel and the queue that drives it (see timer_wheel.hpp).

#include "timer_wheel.hpp"

#include "loop.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <memory>

namespace baton::detail {

namespace {

using clock = std::chrono::steady_clock;

// Links are tagged addresses: 1 = a sleeping task, 0 = a timer_node, 2 = a slot (the sentinel
// of its list). A sleeping task's two links are its own fields, free while it sleeps: it is in
// no ready queue (next_ready) and on no wait list (wait_prev, the union member beside error,
// which holds no failure while the task is suspended).
constexpr std::uintptr_t tag_mask = 3, task_tag = 1, slot_tag = 2;

struct wheel_slot {
  std::uintptr_t next;
  std::uintptr_t prev;
};

task_base* as_task(std::uintptr_t v) noexcept {
  return reinterpret_cast<task_base*>(v & ~tag_mask);
}
timer_node* as_node(std::uintptr_t v) noexcept { return reinterpret_cast<timer_node*>(v); }
wheel_slot* as_slot(std::uintptr_t v) noexcept {
  return reinterpret_cast<wheel_slot*>(v & ~tag_mask);
}

std::uintptr_t next_of(std::uintptr_t v) noexcept {
  switch (v & tag_mask) {
    case task_tag:
      return reinterpret_cast<std::uintptr_t>(as_task(v)->next_ready);
    case slot_tag:
      return as_slot(v)->next;
    default:
      return as_node(v)->next;
  }
}

std::uintptr_t prev_of(std::uintptr_t v) noexcept {
  switch (v & tag_mask) {
    case task_tag:
      return reinterpret_cast<std::uintptr_t>(as_task(v)->wait_prev);
    case slot_tag:
      return as_slot(v)->prev;
    default:
      return as_node(v)->prev;
  }
}

void set_next(std::uintptr_t v, std::uintptr_t to) noexcept {
  switch (v & tag_mask) {
    case task_tag:
      as_task(v)->next_ready = reinterpret_cast<task_base*>(to);
      break;
    case slot_tag:
      as_slot(v)->next = to;
      break;
    default:
      as_node(v)->next = to;
  }
}

void set_prev(std::uintptr_t v, std::uintptr_t to) noexcept {
  switch (v & tag_mask) {
    case task_tag:
      as_task(v)->wait_prev = reinterpret_cast<task_base*>(to);
      break;
    case slot_tag:
      as_slot(v)->prev = to;
      break;
    default:
      as_node(v)->prev = to;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// timer_wheel

timer_wheel::timer_wheel(clock::time_point start) noexcept : start_(start) {
  for (auto& level : slots_) {
    for (slot& s : level) {
      const std::uintptr_t self = reinterpret_cast<std::uintptr_t>(&s) | slot_tag;
      s.next = s.prev = self;
    }
  }
}

clock::time_point timer_wheel::deadline_of(entry e) noexcept {
  if (e.is_task()) return *static_cast<const clock::time_point*>(e.task()->hook.arg);
  return e.node()->deadline;
}

std::uint64_t timer_wheel::tick_of(clock::time_point d) const noexcept {
  if (d <= start_) return 0;
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(d - start_).count());
}

clock::time_point timer_wheel::time_of(std::uint64_t tick) const noexcept {
  return start_ + std::chrono::milliseconds(tick);
}

void timer_wheel::link(entry e, slot& s) noexcept {
  const std::uintptr_t self = reinterpret_cast<std::uintptr_t>(&s) | slot_tag;
  const std::uintptr_t tail = s.prev;
  set_next(e.bits(), self);
  set_prev(e.bits(), tail);
  set_next(tail, e.bits());
  s.prev = e.bits();
}

void timer_wheel::add(entry e) noexcept {
  if (e.is_task()) {
    task_base* t = e.task();
    // The slot holds no failure now (see task_base::error): end that member, use the link.
    assert(!t->error);
    t->error.~exception_ptr();
    t->wait = wait_state::queued;
  } else {
    e.node()->queued = true;
  }
  ++size_;
  place(e);
}

void timer_wheel::place(entry e) noexcept {
  std::uint64_t tick = std::max(tick_of(deadline_of(e)), elapsed_);
  if (tick - elapsed_ >= max_ticks) tick = elapsed_ + max_ticks - 1;  // waits in the last level
  std::uint64_t masked = (elapsed_ ^ tick) | (slots_per_level - 1);
  if (masked >= max_ticks) masked = max_ticks - 1;
  const unsigned level = static_cast<unsigned>(63 - std::countl_zero(masked)) / slot_bits;
  const unsigned index = static_cast<unsigned>(tick >> (level * slot_bits)) & 63;
  link(e, slots_[level][index]);
  occupied_[level] |= std::uint64_t{1} << index;
}

void timer_wheel::unqueue(entry e) noexcept {
  --size_;
  if (e.is_task()) {
    task_base* t = e.task();
    t->next_ready = nullptr;
    std::construct_at(&t->error);  // back to "no failure"
    t->wait = wait_state::idle;
  } else {
    timer_node* n = e.node();
    n->next = n->prev = 0;
    n->queued = false;
  }
}

bool timer_wheel::remove(entry e) noexcept {
  if (e.is_task() ? e.task()->wait != wait_state::queued : !e.node()->queued) return false;
  const std::uintptr_t p = prev_of(e.bits());
  const std::uintptr_t n = next_of(e.bits());
  set_next(p, n);
  set_prev(n, p);
  if (p == n && (p & tag_mask) == slot_tag) {  // the slot is empty now
    const auto i = static_cast<std::size_t>(reinterpret_cast<slot*>(p & ~tag_mask) - &slots_[0][0]);
    occupied_[i / slots_per_level] &= ~(std::uint64_t{1} << (i % slots_per_level));
  }
  unqueue(e);
  return true;
}

bool timer_wheel::next_expiry(position& out) const noexcept {
  for (unsigned level = 0; level < levels; ++level) {
    const std::uint64_t occ = occupied_[level];
    if (occ == 0) continue;
    const unsigned shift = level * slot_bits;
    const unsigned now_slot = static_cast<unsigned>(elapsed_ >> shift) & 63;
    const unsigned zeros =
        static_cast<unsigned>(std::countr_zero(std::rotr(occ, static_cast<int>(now_slot))));
    const unsigned index = (now_slot + zeros) & 63;
    const std::uint64_t slot_range = std::uint64_t{1} << shift;
    const std::uint64_t level_range = slot_range << slot_bits;
    std::uint64_t tick = (elapsed_ & ~(level_range - 1)) + index * slot_range;
    // Behind the current position: only the last level's far deadlines (clamped into it)
    // wrap around like this; they belong to the level's next turn.
    if (tick < elapsed_ || (level > 0 && tick <= elapsed_ && index == now_slot)) {
      tick += level_range;
    }
    out = {level, index, tick};
    return true;
  }
  return false;
}

std::uintptr_t timer_wheel::detach(slot& s) noexcept {
  const std::uintptr_t self = reinterpret_cast<std::uintptr_t>(&s) | slot_tag;
  if (s.next == self) return 0;
  const std::uintptr_t first = s.next;
  set_next(s.prev, 0);
  s.next = s.prev = self;
  const auto i = static_cast<std::size_t>(&s - &slots_[0][0]);
  occupied_[i / slots_per_level] &= ~(std::uint64_t{1} << (i % slots_per_level));
  return first;
}

clock::time_point timer_wheel::take_due(clock::time_point now, std::vector<entry>& due) {
  const std::uint64_t now_tick = tick_of(now);
  for (;;) {
    position p{};
    if (!next_expiry(p)) return clock::time_point::max();
    slot& s = slots_[p.level][p.index];
    if (p.tick > now_tick) {
      if (p.level > 0) return time_of(p.tick);  // then its entries move down a level
      clock::time_point earliest = clock::time_point::max();
      for (std::uintptr_t v = s.next; (v & tag_mask) != slot_tag; v = next_of(v)) {
        earliest = std::min(earliest, deadline_of(entry(v)));
      }
      return earliest;
    }
    std::uintptr_t v = detach(s);
    elapsed_ = std::max(elapsed_, p.tick);
    if (p.level > 0) {  // cascade: each entry goes to the level its deadline now needs
      while (v != 0) {
        const std::uintptr_t next = next_of(v);
        place(entry(v));
        v = next;
      }
      continue;
    }
    const std::size_t first = due.size();
    while (v != 0) {
      const std::uintptr_t next = next_of(v);
      const entry e(v);
      if (deadline_of(e) <= now) {
        unqueue(e);
        due.push_back(e);
      } else {
        place(e);  // later within this millisecond (or clamped further): stays queued
      }
      v = next;
    }
    // Exact order within the millisecond; equal deadlines keep the order they were added in.
    std::stable_sort(due.begin() + static_cast<std::ptrdiff_t>(first), due.end(),
                     [](entry a, entry b) { return deadline_of(a) < deadline_of(b); });
    if ((occupied_[0] >> p.index) & 1) {
      // Entries of this very millisecond are left (not yet due): nothing later can be due.
      clock::time_point earliest = clock::time_point::max();
      for (std::uintptr_t w = s.next; (w & tag_mask) != slot_tag; w = next_of(w)) {
        earliest = std::min(earliest, deadline_of(entry(w)));
      }
      return earliest;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// timer_queue

timer_queue::timer_queue(boost::asio::io_context& io) : wheel_(clock::now()), driver_(io) {}

void timer_queue::add(entry e) {
  std::lock_guard lock(mutex_);
  wheel_.add(e);
  const clock::time_point d = timer_wheel::deadline_of(e);
  if (d < armed_ && !stopped_) arm(d);
}

bool timer_queue::cancel(entry e) noexcept {
  // The driver stays armed: if it wakes for nothing, fire_due() re-arms it for what is left.
  std::lock_guard lock(mutex_);
  return wheel_.remove(e);
}

void timer_queue::arm(clock::time_point at) noexcept {
  armed_ = at;
  driver_.expires_at(at);  // cancels the wait in progress (its handler sees operation_aborted)
  driver_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) fire_due();
  });
}

void timer_queue::fire_due() noexcept {
  std::vector<entry> due;
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    const clock::time_point next = wheel_.take_due(clock::now(), due);
    armed_ = clock::time_point::max();
    if (next != clock::time_point::max()) arm(next);
  }
  // Unlocked: a node's fire() may cancel a task whose sleep's cancel hook takes the lock.
  for (const entry e : due) {
    if (e.is_task()) {
      schedule(e.task());
    } else {
      e.node()->fire(e.node());
    }
  }
}

void timer_queue::shutdown() noexcept {
  std::lock_guard lock(mutex_);
  stopped_ = true;
  armed_ = clock::time_point::max();
  driver_.cancel();
}

// ---------------------------------------------------------------------------------------------
// the calls header templates make

void start_sleep(task_base* t, const clock::time_point* deadline) {
  assert(t->hook.arg == deadline);
  (void)deadline;
  t->owner_loop->timers().add(timer_wheel::entry::of(t));
}

void cancel_sleep(task_base* t) noexcept {
  if (t->owner_loop->timers().cancel(timer_wheel::entry::of(t))) schedule(t);
}

void add_timer(loop& l, timer_node* n) { l.timers().add(timer_wheel::entry::of(n)); }

bool cancel_timer(loop& l, timer_node* n) noexcept {
  return l.timers().cancel(timer_wheel::entry::of(n));
}

}  // namespace baton::detail
