// SPDX-License-Identifier: BSL-1.0
// A loop thread's own ready tasks (private): a bounded ring its owner pushes to and pops from,
// which idle loop threads steal half of. docs/design/scheduler.md describes the protocol.
#pragma once

#include <baton/detail/task_base.hpp>

#include <array>
#include <atomic>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace baton::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

/// One producer (the owning worker) and many consumers (the owner pops, idle workers steal).
/// `head_` only moves by compare-and-swap, `tail_` is written by the owner alone. Slots are
/// atomics so that a thief's speculative read of a slot the owner is refilling is not a data
/// race: a thief that read a stale slot fails its compare-and-swap on `head_` and drops it.
class run_queue {
 public:
  static constexpr std::uint32_t capacity = 256;

  /// Owner: appends t. False when the ring is full (the caller moves half of it elsewhere).
  bool push(task_base* t) noexcept {
    // acquire: a slot a thief has released (its CAS on head_) is no longer read by it.
    const std::uint32_t h = head_.load(std::memory_order_acquire);
    const std::uint32_t tl = tail_.load(std::memory_order_relaxed);  // only this thread writes
    if (tl - h >= capacity) return false;
    slots_[tl % capacity].store(t, std::memory_order_relaxed);
    // release: the slot is written before a consumer can see the new tail.
    tail_.store(tl + 1, std::memory_order_release);
    return true;
  }

  /// Owner: the oldest task, or nullptr.
  task_base* pop() noexcept {
    // acquire: as in push(); tail_ relaxed: only this thread writes it. The slot is read
    // relaxed: this thread wrote it, and the CAS decides whether the read counts.
    std::uint32_t h = head_.load(std::memory_order_acquire);
    for (;;) {
      if (h == tail_.load(std::memory_order_relaxed)) return nullptr;
      task_base* t = slots_[h % capacity].load(std::memory_order_relaxed);
      // acq_rel: wins the slot against thieves (acquire: the task's state as its pusher left
      // it; release: pairs with push()'s acquire of head_). On failure h is reloaded.
      if (head_.compare_exchange_weak(h, h + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        return t;
      }
    }
  }

  /// Owner, when the ring is full: takes the older half out, linked through next_ready (for
  /// the injection queue). Returns nullptr when thieves have made room meanwhile.
  task_base* take_half() noexcept {
    constexpr std::uint32_t n = capacity / 2;
    // Orderings as in pop().
    std::uint32_t h = head_.load(std::memory_order_acquire);
    std::array<task_base*, n> taken;
    for (;;) {
      if (tail_.load(std::memory_order_relaxed) - h < n) return nullptr;
      for (std::uint32_t i = 0; i < n; ++i) {
        taken[i] = slots_[(h + i) % capacity].load(std::memory_order_relaxed);
      }
      // acq_rel: as in pop().
      if (head_.compare_exchange_weak(h, h + n, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        break;
      }
    }
    for (std::uint32_t i = 0; i + 1 < n; ++i) taken[i]->next_ready = taken[i + 1];
    taken[n - 1]->next_ready = nullptr;
    return taken[0];
  }

  /// Called by a thief on the victim's ring: moves half of it (rounded up) into `into`, the
  /// thief's own ring, which must be empty; returns one of the stolen tasks to run at once, or
  /// nullptr when there was nothing to steal.
  task_base* steal_into(run_queue& into) noexcept {
    const std::uint32_t dst = into.tail_.load(std::memory_order_relaxed);  // the thief owns it
    std::uint32_t n = 0;
    for (;;) {
      // acquire: a slot the owner or another thief released is no longer theirs.
      std::uint32_t h = head_.load(std::memory_order_acquire);
      // acquire: the slots below the tail are written.
      const std::uint32_t tl = tail_.load(std::memory_order_acquire);
      n = tl - h;
      n -= n / 2;
      if (n == 0) return nullptr;
      if (n > capacity / 2) continue;  // h and tl read at different times: read again
      // Relaxed copies: the tail's acquire ordered the source slots, the CAS decides whether
      // they count, and the release of into.tail_ publishes the copies.
      for (std::uint32_t i = 0; i < n; ++i) {
        into.slots_[(dst + i) % capacity].store(
            slots_[(h + i) % capacity].load(std::memory_order_relaxed), std::memory_order_relaxed);
      }
      // acq_rel: as in pop(); a failure means the owner or another thief took some first.
      if (head_.compare_exchange_strong(h, h + n, std::memory_order_acq_rel,
                                        std::memory_order_relaxed)) {
        break;
      }
    }
    --n;
    // Relaxed: the thief's own ring, just written by this thread.
    task_base* const run_now = into.slots_[(dst + n) % capacity].load(std::memory_order_relaxed);
    // release: the copied slots before the tail that publishes them.
    if (n != 0) into.tail_.store(dst + n, std::memory_order_release);
    return run_now;
  }

  /// Tasks in the ring (approximate when read by another thread).
  /// acquire (both): a thief's count of what it may steal follows push()'s release.
  std::uint32_t size() const noexcept {
    const std::uint32_t h = head_.load(std::memory_order_acquire);
    return tail_.load(std::memory_order_acquire) - h;
  }

 private:
  // Thieves write head_: it starts a line, so that their CASes do not touch the owner's fields
  // before it in the worker (tail_, written only by the owner, shares the line).
  alignas(64) std::atomic<std::uint32_t> head_{0};
  std::atomic<std::uint32_t> tail_{0};
  std::array<std::atomic<task_base*>, capacity> slots_{};
};

/// A lock for the live-list shards: one exchange to take, one store to release, for sections
/// of a few pointer writes. It yields the CPU after a short spin, so a holder that the OS has
/// descheduled (more loop threads than cores) is not spun on for a whole time slice.
class spin_mutex {
 public:
  void lock() noexcept {
    // acquire: see what the previous holder wrote.
    while (locked_.exchange(true, std::memory_order_acquire)) {
      for (int i = 0; locked_.load(std::memory_order_relaxed); ++i) {
        if (i < 64) {
          cpu_relax();
        } else {
          yield_now();
        }
      }
    }
  }
  // release: publish what was written under the lock.
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  static void yield_now() noexcept;
  std::atomic<bool> locked_{false};
};

}  // namespace baton::detail
