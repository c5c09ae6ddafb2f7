// SPDX-License-Identifier: BSL-1.0
// A loop's timers (private): a hierarchical timing wheel, and the queue that drives it from one
// Asio steady_timer. docs/design/timers.md.
#pragma once

// timer_wheel: 6 levels of 64 slots; a slot of level L spans 64^L milliseconds, so the wheel
// spans 64^6 ms (about 2.2 years; later deadlines wait in the last level and are put back
// where they belong as time comes closer). Each slot is a circular doubly linked list whose
// sentinel is the slot itself, so an entry is unlinked in O(1) without knowing where it is;
// one 64-bit mask per level says which slots hold entries, so the next expiry is found with a
// count of trailing zeros per level. Entries keep their exact deadline: a level-0 slot
// (one millisecond) fires only the entries whose deadline has passed, so a wheel of
// milliseconds does not round sleeps up to a millisecond.
//
// timer_queue: the small interface the loop uses, independent of how the loop runs its tasks:
//   add(e)       queue an entry; re-arms the driver when e is the new earliest deadline;
//   cancel(e)    unlink it (false: already taken to be fired);
//   fire_due()   take what is due, re-arm the driver for the next deadline, then fire (after
//                releasing the lock: a node's fire() may cancel a task whose hook cancels a
//                sleep, which takes the lock again);
//   shutdown()   stop the driver (the loop's end);
//   next_expiry() when the driver fires next, for a loop that waits in a park hook.
// One mutex guards the wheel and the driver (uncontended on a one-thread loop).

#include <baton/detail/timer.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <vector>

namespace baton::detail {

class timer_wheel {
 public:
  using clock = std::chrono::steady_clock;

  /// An entry: a sleeping task or a timer_node, told apart by the low bits of the address.
  class entry {
   public:
    static entry of(task_base* t) noexcept {
      return entry(reinterpret_cast<std::uintptr_t>(t) | 1);
    }
    static entry of(timer_node* n) noexcept { return entry(reinterpret_cast<std::uintptr_t>(n)); }
    bool is_task() const noexcept { return (bits_ & 3) == 1; }
    task_base* task() const noexcept {
      return reinterpret_cast<task_base*>(bits_ & ~std::uintptr_t{3});
    }
    timer_node* node() const noexcept { return reinterpret_cast<timer_node*>(bits_); }
    std::uintptr_t bits() const noexcept { return bits_; }
    explicit entry(std::uintptr_t bits) noexcept : bits_(bits) {}

   private:
    std::uintptr_t bits_;
  };

  explicit timer_wheel(clock::time_point start) noexcept;
  timer_wheel(const timer_wheel&) = delete;
  timer_wheel& operator=(const timer_wheel&) = delete;

  void add(entry e) noexcept;
  /// Unlinks e; false when it is not in the wheel.
  bool remove(entry e) noexcept;
  /// Moves the entries due at `now` into `due`, in deadline order (equal deadlines in the order
  /// they were added), and returns when the next entry may be due (clock::time_point::max()
  /// when the wheel is empty).
  clock::time_point take_due(clock::time_point now, std::vector<entry>& due);
  std::size_t size() const noexcept { return size_; }

  static clock::time_point deadline_of(entry e) noexcept;

 private:
  static constexpr unsigned levels = 6;
  static constexpr unsigned slot_bits = 6;
  static constexpr std::uint64_t slots_per_level = 64;
  static constexpr std::uint64_t max_ticks = std::uint64_t{1} << (levels * slot_bits);

  struct slot {  // the sentinel of a circular list (tag 2 in links)
    std::uintptr_t next;
    std::uintptr_t prev;
  };
  struct position {
    unsigned level;
    unsigned index;
    std::uint64_t tick;  // when the slot starts (level 0: its millisecond)
  };

  std::uint64_t tick_of(clock::time_point d) const noexcept;
  clock::time_point time_of(std::uint64_t tick) const noexcept;
  bool next_expiry(position& out) const noexcept;
  void place(entry e) noexcept;    // links a queued entry where its deadline belongs now
  void unqueue(entry e) noexcept;  // marks an unlinked entry as out of the wheel
  void link(entry e, slot& s) noexcept;
  std::uintptr_t detach(slot& s) noexcept;  // the slot's list (linear, ends at 0), slot emptied

  clock::time_point start_;
  std::uint64_t elapsed_ = 0;  // ticks since start_ the wheel has processed up to
  std::size_t size_ = 0;
  std::array<std::uint64_t, levels> occupied_{};
  std::array<std::array<slot, slots_per_level>, levels> slots_;
};

class timer_queue {
 public:
  using clock = std::chrono::steady_clock;
  using entry = timer_wheel::entry;

  explicit timer_queue(boost::asio::io_context& io);
  void add(entry e);
  bool cancel(entry e) noexcept;
  void fire_due() noexcept;
  void shutdown() noexcept;
  /// When the driver fires next (time_point::max() when nothing is queued or after shutdown).
  clock::time_point next_expiry() noexcept {
    std::lock_guard lock(mutex_);
    return armed_;
  }

 private:
  void arm(clock::time_point at) noexcept;  // under mutex_

  std::mutex mutex_;
  timer_wheel wheel_;
  boost::asio::steady_timer driver_;
  clock::time_point armed_ = clock::time_point::max();  // the driver's expiry, max = idle
  bool stopped_ = false;
};

}  // namespace baton::detail
