// SPDX-License-Identifier: BSL-1.0
// Coroutine frames from a recycling cache of the loop thread (the nested co_await fast path).
#pragma once

// Every task<T> frame is allocated here (promise_base::operator new). On a loop thread the
// frame comes from that thread's cache: a free list per 8-byte size class, popped and pushed
// inline, so a nested co_await allocates and frees its frame without a call into libbaton.
// Blocks are plain ::operator new blocks of a whole size class, so a frame may be freed on any
// thread (a task that moved between loop threads, or a frame destroyed after its loop ended):
// it then joins that thread's cache, or goes back to the heap off a loop thread.
//
//   thread ── current_frames ──▶ frame_cache: heads[class] ──▶ block ──▶ block ──▶ ...
//
// Frames of 1 KiB and more go straight to the heap; the cache keeps at most `budget` bytes.

#include <cstddef>
#include <new>

namespace baton::detail {

struct frame_cache {
  // 8 bytes: every frame size g++ makes is a multiple of 8, and malloc hands out 16-aligned
  // chunks of 8 + a multiple of 16 bytes, so a 72-byte frame costs 72 usable bytes where a
  // 16-byte class would make it 80 (and malloc 88).
  static constexpr std::size_t granule = 8;
  static constexpr std::size_t classes = 128;  // blocks below 1 KiB
  static constexpr std::size_t budget = std::size_t{256} * 1024;
  struct block {
    block* next;
  };
  block* heads[classes] = {};
  std::size_t cached = 0;  // bytes held in heads

  frame_cache() = default;
  frame_cache(const frame_cache&) = delete;
  frame_cache& operator=(const frame_cache&) = delete;
  ~frame_cache();
};

/// The calling loop thread's cache, or nullptr off a loop thread (constinit: one TLS load).
[[gnu::tls_model("initial-exec")]] extern constinit thread_local frame_cache* current_frames;

[[gnu::always_inline]] inline void* allocate_frame(std::size_t size) {
  const std::size_t cls = (size + frame_cache::granule - 1) / frame_cache::granule;
  if (cls >= frame_cache::classes) return ::operator new(size);
  if (frame_cache* const c = current_frames) {
    if (frame_cache::block* const b = c->heads[cls]) {
      c->heads[cls] = b->next;
      c->cached -= cls * frame_cache::granule;
      return b;
    }
  }
  // Always a whole class: the block may be freed on a loop thread and cached there.
  return ::operator new(cls* frame_cache::granule);
}

[[gnu::always_inline]] inline void deallocate_frame(void* p, std::size_t size) noexcept {
  const std::size_t bytes =
      (size + frame_cache::granule - 1) / frame_cache::granule * frame_cache::granule;
  frame_cache* const c = current_frames;
  if (c == nullptr || bytes >= frame_cache::classes * frame_cache::granule ||
      c->cached + bytes > frame_cache::budget) {
    ::operator delete(p);
    return;
  }
  auto* const b = static_cast<frame_cache::block*>(p);
  const std::size_t cls = bytes / frame_cache::granule;
  b->next = c->heads[cls];
  c->heads[cls] = b;
  c->cached += bytes;
}

}  // namespace baton::detail
