// SPDX-License-Identifier: BSL-1.0
// The persistent hash trie behind contexts: insert, erase, reference counting, and the blocks of
// whole cache lines its nodes (and task states) live in (see "Where nodes live" below).

#include <baton/detail/context_map.hpp>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <new>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace baton::detail {
namespace {

constexpr unsigned bits_per_level = 5;

std::uint32_t position_bit(var_key key, unsigned shift) noexcept {
  return std::uint32_t{1} << ((key >> shift) & 31);
}

// ---------------------------------------------------------------------------------------------
// Where nodes live
//
// Every node is a block of whole 64-byte cache lines, 64-aligned, so that no other object
// shares a line with it. A published node is only read (save its count and its mirror stamp),
// by every thread that runs a context holding it; a neighbour written on each resume (a task's
// state, a coroutine frame: malloc packs blocks 16 bytes apart) would turn each of those reads
// into a miss once the task moves between loop threads. Task states take their blocks here too
// (allocate_lines()): a state is written by whichever loop thread runs the task, and in a malloc
// block its first line held the last bytes of its neighbour (the status word written on every
// resume of that task, maybe on the other core).
//
//   thread ── this_thread_nodes ──▶ node_cache: free[lines] ──▶ block ──▶ block ...
//                                              slab: the rest of its current slab
//   process ── spare: free[lines] (a mutex), blocks a thread had too many of, or left at exit
//
// Blocks are carved from 4 KiB slabs (glibc's aligned allocation is slow when done per block:
// it splits a larger chunk). A freed block joins the freeing thread's list; a list holding
// more than `keep` blocks passes `batch` of them to the process's spare list, and an empty one
// takes a batch from there before carving. Slabs are never freed: the memory for nodes stays
// at the process's peak of live nodes, as most of a malloc arena's does.

constexpr std::size_t line_bytes = 64;
constexpr unsigned max_lines =
    (offsetof(map_node, slots) + 32 * sizeof(slot) + line_bytes - 1) / line_bytes;
constexpr std::size_t slab_bytes = 4096;
constexpr unsigned keep = 64;   // blocks of one size a thread keeps
constexpr unsigned batch = 32;  // blocks moved to or from the spare list at once

/// Bytes of all slabs ever made (memory_bench takes them out of malloc's count).
constinit std::atomic<std::int64_t> slab_bytes_made{0};

struct free_block {
  free_block* next;
};

/// Blocks of one size, linked through their first word.
struct block_list {
  free_block* head = nullptr;
  unsigned count = 0;

  void push(void* p) noexcept {
    auto* const b = static_cast<free_block*>(p);
    b->next = head;
    head = b;
    ++count;
  }
  void* pop() noexcept {
    free_block* const b = head;
    head = b->next;
    --count;
    return b;
  }
  /// Moves up to n blocks from the front of `from` to the front of this list.
  void take(block_list& from, unsigned n) noexcept {
    for (; n != 0 && from.head != nullptr; --n) push(from.pop());
  }
};

/// Freed blocks are poisoned for AddressSanitizer (all but the link), so a use of a node after
/// its last release is still reported, as with a heap block.
void poison(void* p, unsigned lines) noexcept {
#if defined(__SANITIZE_ADDRESS__)
  ASAN_POISON_MEMORY_REGION(static_cast<char*>(p) + sizeof(free_block),
                            lines * line_bytes - sizeof(free_block));
#else
  (void)p, (void)lines;
#endif
}
void unpoison(void* p, unsigned lines) noexcept {
#if defined(__SANITIZE_ADDRESS__)
  ASAN_UNPOISON_MEMORY_REGION(p, lines * line_bytes);
#else
  (void)p, (void)lines;
#endif
}

/// The process's spare blocks. `available` mirrors each list's count, so that a thread with an
/// empty list takes the lock only when there is something to take (relaxed: a stale 0 makes it
/// carve a block instead, a stale non-zero makes it lock and find nothing).
struct spare_blocks {
  std::mutex mutex;
  block_list free[max_lines + 1];
  std::atomic<unsigned> available[max_lines + 1] = {};

  /// Under mutex.
  void put(unsigned lines, block_list& from, unsigned n) noexcept {
    free[lines].take(from, n);
    available[lines].store(free[lines].count, std::memory_order_relaxed);
  }
  void put(unsigned lines, void* block) noexcept {
    free[lines].push(block);
    available[lines].store(free[lines].count, std::memory_order_relaxed);
  }
  void get(unsigned lines, block_list& to, unsigned n) noexcept {
    to.take(free[lines], n);
    available[lines].store(free[lines].count, std::memory_order_relaxed);
  }
};
/// Made at first use and never destroyed: threads may free nodes during static destruction.
spare_blocks& spare() noexcept {
  static spare_blocks* const s = new spare_blocks;
  return *s;
}

/// A slab's lines not carved yet: [next, end).
struct slab_rest {
  char* next = nullptr;
  char* end = nullptr;
};

struct node_cache {
  block_list free[max_lines + 1];
  slab_rest slab;
  // Lines this thread took minus lines it gave back (negative when it frees what others took):
  // what memory_bench adds to malloc's count, since blocks come from slabs made earlier.
  std::int64_t lines_out = 0;

  node_cache() = default;
  node_cache(const node_cache&) = delete;
  node_cache& operator=(const node_cache&) = delete;
  /// The thread ends: its blocks, and its slab's rest cut into blocks, go to the spare list.
  ~node_cache() {
    cut_slab_rest();
    std::lock_guard lock(spare().mutex);
    for (unsigned lines = 0; lines <= max_lines; ++lines) {
      spare().put(lines, free[lines], free[lines].count);
    }
  }
  /// Cuts what is left of the slab into 2-line blocks of the free list (at most a line is lost).
  void cut_slab_rest() noexcept {
    for (; slab.end - slab.next >= static_cast<std::ptrdiff_t>(2 * line_bytes);
         slab.next += 2 * line_bytes) {
      poison(slab.next, 2);
      free[2].push(slab.next);
    }
  }
};

/// This thread's cache, made by its first node allocation or free; nullptr before, and again
/// once its thread-exit destructor ran (later frees, from other thread-locals' destructors, go
/// to the spare list). constinit: one TLS load on the common path.
[[gnu::tls_model("initial-exec")]] constinit thread_local node_cache* this_thread_nodes = nullptr;
constinit thread_local bool this_thread_nodes_gone = false;
struct node_cache_owner {
  node_cache cache;
  node_cache_owner() noexcept { this_thread_nodes = &cache; }
  ~node_cache_owner() {
    this_thread_nodes = nullptr;
    this_thread_nodes_gone = true;
  }
};

node_cache* nodes_of_this_thread() noexcept {
  if (this_thread_nodes == nullptr && !this_thread_nodes_gone) [[unlikely]] {
    thread_local node_cache_owner owner;  // sets this_thread_nodes
  }
  return this_thread_nodes;
}

/// A block of `lines` when this thread's list has none: a batch from the spare list, else the
/// rest of the thread's slab, else a new slab.
[[gnu::noinline]] void* new_block(node_cache* c, unsigned lines) {
  if (c == nullptr) {  // a thread past its cache's destructor: the spare list, or the heap
    block_list one;
    {
      std::lock_guard lock(spare().mutex);
      spare().get(lines, one, 1);
    }
    if (one.head != nullptr) return one.pop();
    const std::size_t bytes = lines * line_bytes;
    return ::operator new (bytes, std::align_val_t{line_bytes});
  }
  if (spare().available[lines].load(std::memory_order_relaxed) != 0) {
    std::lock_guard lock(spare().mutex);
    spare().get(lines, c->free[lines], batch);
  }
  if (c->free[lines].head != nullptr) return c->free[lines].pop();
  const std::size_t bytes = lines * line_bytes;
  if (c->slab.end - c->slab.next < static_cast<std::ptrdiff_t>(bytes)) {
    c->cut_slab_rest();
    if (c->free[lines].head != nullptr) return c->free[lines].pop();
    c->slab.next = static_cast<char*>(::operator new (slab_bytes, std::align_val_t{line_bytes}));
    slab_bytes_made.fetch_add(slab_bytes, std::memory_order_relaxed);  // relaxed: a statistic
    c->slab.end = c->slab.next + slab_bytes;
  }
  void* const p = c->slab.next;
  c->slab.next += bytes;
  return p;
}

unsigned lines_for(std::size_t bytes) noexcept {
  return static_cast<unsigned>((bytes + line_bytes - 1) / line_bytes);
}

/// A block of `lines` (at most max_lines): this thread's list, else new_block().
void* take_block(unsigned lines) {
  node_cache* const c = nodes_of_this_thread();
  void* const p =
      c != nullptr && c->free[lines].head != nullptr ? c->free[lines].pop() : new_block(c, lines);
  unpoison(p, lines);
  if (c != nullptr) c->lines_out += lines;
  return p;
}

/// Gives back a block of `lines` to this thread's list (the spare list past `keep`).
void give_block(void* p, unsigned lines) noexcept {
  poison(p, lines);
  node_cache* const c = nodes_of_this_thread();
  if (c == nullptr) [[unlikely]] {
    std::lock_guard lock(spare().mutex);
    spare().put(lines, p);
    return;
  }
  c->lines_out -= lines;
  block_list& list = c->free[lines];
  list.push(p);
  if (list.count > keep) [[unlikely]] {
    std::lock_guard lock(spare().mutex);
    spare().put(lines, list, batch);
  }
}

map_node* allocate(unsigned nslots) {
  const std::size_t bytes = offsetof(map_node, slots) + sizeof(slot) * (nslots == 0 ? 1 : nslots);
  const unsigned lines = lines_for(bytes);
  auto* n = static_cast<map_node*>(take_block(lines));
  // Relaxed: the node is not published yet; publishing it orders this store.
  n->refs.store(1, std::memory_order_relaxed);
  n->lines = static_cast<std::uint8_t>(lines);
  n->version = 0;
  n->mirror_stamp.store(0, std::memory_order_relaxed);
  n->filtered[0].store(nullptr, std::memory_order_relaxed);
  n->filtered[1].store(nullptr, std::memory_order_relaxed);
  return n;
}

void deallocate(map_node* n) noexcept { give_block(n, n->lines); }

void retain_box(std::uint64_t bits) noexcept {
  // Relaxed: a new reference is made from an existing one, so nothing needs ordering here.
  reinterpret_cast<value_box*>(bits)->refs.fetch_add(1, std::memory_order_relaxed);
}

void release_box(std::uint64_t bits) noexcept {
  auto* b = reinterpret_cast<value_box*>(bits);
  if (drop_ref(b->refs)) b->destroy(b);
}

/// Calls f(slot index, is_child) for every slot of n that owns a reference (children and
/// boxed values); inline values own nothing, so nodes of plain values cost no atomics.
template <class F>
void for_each_owned(const map_node* n, F&& f) {
  for (std::uint32_t owned = n->children | n->boxed; owned != 0; owned &= owned - 1) {
    const unsigned pos = static_cast<unsigned>(std::countr_zero(owned));
    f(n->index[pos], ((n->children >> pos) & 1) != 0);
  }
}

/// Recomputes the derived fields (index, boxed) once a node's slots and bitmaps are final.
map_node* seal(map_node* n) noexcept {
  std::memset(n->index, no_slot, sizeof n->index);
  n->boxed = 0;
  unsigned i = 0;
  for (std::uint32_t all = n->entries | n->children; all != 0; all &= all - 1, ++i) {
    const unsigned pos = static_cast<unsigned>(std::countr_zero(all));
    n->index[pos] = static_cast<std::uint8_t>(i);
    if (((n->entries >> pos) & 1) != 0 && (n->slots[i].key & boxed_bit) != 0) {
      n->boxed |= std::uint32_t{1} << pos;
    }
  }
  return n;
}

/// A copy of n with every slot retained except skip (pass nslots for none).
map_node* copy_retaining(const map_node* n, unsigned nslots, unsigned extra, unsigned skip) {
  map_node* c = allocate(nslots + extra);
  c->entries = n->entries;
  c->children = n->children;
  c->count = n->count;
  (void)nslots;
  for_each_owned(n, [&](unsigned i, bool child) {
    if (i == skip) return;
    const slot& s = n->slots[i];
    if (child) {
      retain(s.child);
    } else if ((s.key & boxed_bit) != 0) {
      retain_box(s.bits);
    }
  });
  return c;
}

/// A node holding the two entries a and b (distinct keys), nested as deep as their keys agree.
map_node* make_pair(const slot& a, const slot& b, unsigned shift) {
  const std::uint32_t ba = position_bit(a.key & ~boxed_bit, shift);
  const std::uint32_t bb = position_bit(b.key & ~boxed_bit, shift);
  if (ba == bb) {
    map_node* child = make_pair(a, b, shift + bits_per_level);
    map_node* n = allocate(1);
    n->entries = 0;
    n->children = ba;
    n->count = 2;
    n->slots[0].key = 0;
    n->slots[0].child = child;
    return seal(n);
  }
  map_node* n = allocate(2);
  n->entries = ba | bb;
  n->children = 0;
  n->count = 2;
  n->slots[ba < bb ? 0 : 1] = a;
  n->slots[ba < bb ? 1 : 0] = b;
  return seal(n);
}

map_node* insert_at(const map_node* n, const slot& e, unsigned shift, bool& added) {
  const var_key key = e.key & ~boxed_bit;
  if (n == nullptr) {
    map_node* r = allocate(1);
    r->entries = position_bit(key, shift);
    r->children = 0;
    r->count = 1;
    r->slots[0] = e;
    added = true;
    return seal(r);
  }
  const std::uint32_t bit = position_bit(key, shift);
  const std::uint32_t all = n->entries | n->children;
  const unsigned nslots = static_cast<unsigned>(std::popcount(all));
  const unsigned idx = static_cast<unsigned>(std::popcount(all & (bit - 1)));

  if ((all & bit) == 0) {  // empty position: a node one slot longer
    map_node* r = copy_retaining(n, nslots, 1, nslots);
    for (unsigned i = 0; i < idx; ++i) r->slots[i] = n->slots[i];
    r->slots[idx] = e;
    for (unsigned i = idx; i < nslots; ++i) r->slots[i + 1] = n->slots[i];
    r->entries |= bit;
    r->count += 1;
    added = true;
    return seal(r);
  }

  slot replacement{};
  std::uint32_t entries = n->entries;
  std::uint32_t children = n->children;
  std::uint32_t count = n->count;
  if ((n->children & bit) != 0) {
    replacement.child = insert_at(n->slots[idx].child, e, shift + bits_per_level, added);
    if (added) ++count;
  } else if ((n->slots[idx].key & ~boxed_bit) == key) {
    replacement = e;  // same var: the new value replaces the old one in the copy
    added = false;
  } else {
    const slot& existing = n->slots[idx];
    if ((existing.key & boxed_bit) != 0) retain_box(existing.bits);
    replacement.child = make_pair(existing, e, shift + bits_per_level);
    entries &= ~bit;
    children |= bit;
    ++count;
    added = true;
  }
  map_node* r = copy_retaining(n, nslots, 0, idx);
  for (unsigned i = 0; i < nslots; ++i) r->slots[i] = n->slots[i];
  r->slots[idx] = replacement;
  r->entries = entries;
  r->children = children;
  r->count = count;
  return seal(r);
}

/// Returns n itself (not retained) when key is absent; else a new owned node, or nullptr.
map_node* erase_at(const map_node* n, var_key key, unsigned shift) {
  const std::uint32_t bit = position_bit(key, shift);
  const std::uint32_t all = n->entries | n->children;
  if ((all & bit) == 0) return const_cast<map_node*>(n);
  const unsigned nslots = static_cast<unsigned>(std::popcount(all));
  const unsigned idx = static_cast<unsigned>(std::popcount(all & (bit - 1)));

  if ((n->children & bit) != 0) {
    // A child holds at least two entries (lone entries are pulled up), so it never empties.
    map_node* child = erase_at(n->slots[idx].child, key, shift + bits_per_level);
    if (child == n->slots[idx].child) return const_cast<map_node*>(n);
    map_node* r = nullptr;
    try {
      r = copy_retaining(n, nslots, 0, idx);
    } catch (...) {
      release(child);
      throw;
    }
    for (unsigned i = 0; i < nslots; ++i) r->slots[i] = n->slots[i];
    r->count = n->count - 1;
    if (child->count == 1 && child->children == 0) {
      r->slots[idx] = child->slots[0];  // pull the lone entry up: keeps the trie canonical
      if ((child->slots[0].key & boxed_bit) != 0) retain_box(child->slots[0].bits);
      r->children &= ~bit;
      r->entries |= bit;
      release(child);
    } else {
      r->slots[idx].child = child;
    }
    return seal(r);
  }
  if ((n->slots[idx].key & ~boxed_bit) != key) return const_cast<map_node*>(n);
  if (nslots == 1) return nullptr;
  map_node* r = copy_retaining(n, nslots, 0, idx);
  for (unsigned i = 0, j = 0; i < nslots; ++i) {
    if (i != idx) r->slots[j++] = n->slots[i];
  }
  r->entries &= ~bit;
  r->count = n->count - 1;
  return seal(r);
}

}  // namespace

namespace {

/// Stands in map_node::filtered for "filtering leaves the empty map" (never dereferenced).
map_node* const no_entries = reinterpret_cast<map_node*>(alignof(map_node));

/// Frees n, whose last reference the caller holds.
void destroy(map_node* n) noexcept {
  for (std::atomic<map_node*>& memo : n->filtered) {
    // Relaxed: the caller holds the last reference, so it already sees every store to it.
    map_node* const f = memo.load(std::memory_order_relaxed);
    if (f != nullptr && f != no_entries) release(f);
  }
  for_each_owned(n, [n](unsigned i, bool child) {
    const slot& s = n->slots[i];
    if (child) {
      release(s.child);
    } else if ((s.key & boxed_bit) != 0) {
      release_box(s.bits);
    }
  });
  deallocate(n);
}

/// Drops one reference now (an atomic decrement unless it is the only one).
void release_now(map_node* n) noexcept {
  if (drop_ref(n->refs)) destroy(n);
}

}  // namespace

[[gnu::tls_model("initial-exec")]] constinit thread_local ref_cache* current_ref_cache = nullptr;

ref_cache* install_ref_cache(ref_cache* c) noexcept { return std::exchange(current_ref_cache, c); }

void flush(ref_cache& c) noexcept {
  // One at a time from the end: destroying a node may release its children into this cache.
  while (c.count != 0) release_now(c.held[--c.count]);
}

void retain(map_node* n) noexcept {
  if (n == nullptr) return;
  if (ref_cache* c = current_ref_cache) {
    for (unsigned i = c->count; i-- != 0;) {
      if (c->held[i] == n) {  // take the reference this thread kept
        c->held[i] = c->held[--c->count];
        return;
      }
    }
  }
  // Relaxed: see retain_box.
  n->refs.fetch_add(1, std::memory_order_relaxed);
}

void release(map_node* n) noexcept {
  if (n == nullptr) return;
  ref_cache* const c = current_ref_cache;
  if (c == nullptr) return release_now(n);
  std::uint32_t mine = 1;  // the reference being released, plus those the cache holds
  for (unsigned i = 0; i != c->count; ++i) mine += c->held[i] == n ? 1 : 0;
  // acquire: when every reference is ours, we free n and must see every other owner's use.
  if (n->refs.load(std::memory_order_acquire) == mine) {
    // Nobody else holds n (so nobody can retain it concurrently): drop ours and free it.
    for (unsigned i = c->count; i-- != 0;) {
      if (c->held[i] == n) c->held[i] = c->held[--c->count];
    }
    destroy(n);
    return;
  }
  if (c->count == ref_cache::capacity) {
    // Full: n takes the oldest's place, and the oldest goes for real. The array is consistent
    // before release_now runs, because freeing the oldest may release its children into this
    // cache again.
    map_node* const oldest = c->held[0];
    for (unsigned i = 1; i != c->count; ++i) c->held[i - 1] = c->held[i];
    c->held[c->count - 1] = n;
    release_now(oldest);
    return;
  }
  c->held[c->count++] = n;
}

namespace {

/// A new root holding root's slots except those at the positions in drop (root positions only:
/// every var a hand-off drops sits there), or nullptr when nothing is left.
map_node* without_positions(const map_node* root, std::uint32_t drop) {
  const std::uint32_t all = root->entries | root->children;
  const unsigned kept = static_cast<unsigned>(std::popcount(all & ~drop));
  if (kept == 0) return nullptr;
  map_node* r = allocate(kept);
  r->entries = root->entries & ~drop;
  r->children = root->children & ~drop;
  r->count = root->count;
  unsigned i = 0;
  unsigned j = 0;
  for (std::uint32_t rest = all; rest != 0; rest &= rest - 1, ++i) {
    const std::uint32_t bit = rest & -rest;
    const slot& s = root->slots[i];
    const bool child = (root->children & bit) != 0;
    if ((drop & bit) != 0) {
      r->count -= child ? s.child->count : 1;
      continue;
    }
    if (child) {
      retain(s.child);
    } else if ((s.key & boxed_bit) != 0) {
      retain_box(s.bits);
    }
    r->slots[j++] = s;
  }
  r->version = fresh_version();  // a root of its own, for the token fast path and mirrors
  stamp_new_root(r, root, 0);
  return seal(r);
}

}  // namespace

map_node* filtered_root(map_node* root, hand_off h) {
  std::atomic<map_node*>& memo = root->filtered[h == hand_off::task ? 0 : 1];
  // acquire: a node another thread built and published here is seen complete.
  map_node* f = memo.load(std::memory_order_acquire);
  if (f == nullptr) {
    map_node* const built = without_positions(root, static_cast<std::uint32_t>(h));
    map_node* const mine = built != nullptr ? built : no_entries;
    // acq_rel: publishes the built node (release), or sees the winner's (acquire).
    if (memo.compare_exchange_strong(f, mine, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      f = mine;
    } else if (built != nullptr) {
      release_now(built);  // another thread kept its node first; use that one
    }
  }
  if (f == no_entries) return nullptr;
  retain(f);
  return f;
}

void drop_entry(const slot& s) noexcept {
  if ((s.key & boxed_bit) != 0) release_box(s.bits);
}

map_node* insert(const map_node* root, const slot& entry) {
  bool added = false;
  try {
    return insert_at(root, entry, 0, added);
  } catch (...) {
    drop_entry(entry);
    throw;
  }
}

map_node* insert_new(const map_node* root, const slot* entries, std::size_t n) {
  constexpr std::size_t positions = 32;  // one bit each in entries | children
  if (n > positions) return nullptr;     // two of them would share a position
  const std::uint32_t taken = root != nullptr ? root->entries | root->children : 0;
  std::uint32_t bits[positions];
  std::uint32_t added = 0;
  for (std::size_t i = 0; i < n; ++i) {
    bits[i] = position_bit(entries[i].key & ~boxed_bit, 0);
    if (((taken | added) & bits[i]) != 0) return nullptr;
    added |= bits[i];
  }
  const unsigned nslots = static_cast<unsigned>(std::popcount(taken));
  map_node* r = nullptr;
  if (root != nullptr) {
    r = copy_retaining(root, nslots, static_cast<unsigned>(n), nslots);
  } else {
    r = allocate(static_cast<unsigned>(n));
    r->entries = r->children = 0;
    r->count = 0;
  }
  // Slots are in position order: a position's slot index is the number of taken positions
  // below it, in the merged set. The old slots move up past the new ones below them.
  const std::uint32_t all = taken | added;
  const auto index = [all](std::uint32_t bit) { return std::popcount(all & (bit - 1)); };
  unsigned from_old = 0;
  for (std::uint32_t t = taken; t != 0; t &= t - 1) {
    r->slots[index(t & -t)] = root->slots[from_old++];
  }
  for (std::size_t i = 0; i < n; ++i) r->slots[index(bits[i])] = entries[i];
  r->entries |= added;
  r->count += static_cast<std::uint32_t>(n);
  return seal(r);
}

map_node* erase(const map_node* root, var_key key) {
  if (root == nullptr) return nullptr;
  map_node* r = erase_at(root, key, 0);
  if (r == root) retain(r);
  return r;
}

std::size_t size(const map_node* root) noexcept { return root != nullptr ? root->count : 0; }

void* allocate_lines(std::size_t bytes) {
  const unsigned lines = lines_for(bytes);
  // Larger than a node can be (a task whose result is big): the heap, still line-aligned.
  if (lines > max_lines) [[unlikely]]
    return ::operator new (bytes, std::align_val_t{line_bytes});
  return take_block(lines);
}

void free_lines(void* p, std::size_t bytes) noexcept {
  const unsigned lines = lines_for(bytes);
  if (lines > max_lines) [[unlikely]] {
    ::operator delete (p, std::align_val_t{line_bytes});
    return;
  }
  give_block(p, lines);
}

std::int64_t line_bytes_out_on_this_thread() noexcept {
  const node_cache* const c = this_thread_nodes;
  return c != nullptr ? c->lines_out * static_cast<std::int64_t>(line_bytes) : 0;
}

std::int64_t line_slab_bytes() noexcept { return slab_bytes_made.load(std::memory_order_relaxed); }

}  // namespace baton::detail
