// SPDX-License-Identifier: BSL-1.0
// The persistent map behind every context, the cell that holds it, and current_cell.
#pragma once

// Picture (docs/design/context-structure.md has the long version):
//
//   thread ── current_cell ──▶ context_cell ── root ──▶ map_node (immutable, refcounted)
//                              (one per context,         │ slots: var key -> value payload
//                               owned by handles         │        or child map_node
//                               and tasks)               ▼
//                                                      value_box (refcounted) for big values
//
// A map_node is a node of a hash-array-mapped trie keyed by the var's id (ids are unique and
// never reused, so the id is its own perfect hash): level L uses bits 5L..5L+4 of the id.
// A context with up to 32 vars of distinct low bits is a single flat node: get() is one byte
// load from the node's index table and one compare. Nodes are never mutated once published; set()
// copies the path to the changed slot (O(log32 n)), copy() shares the root (O(1)).
//
// Values that are trivially copyable and fit in 8 bytes live inline in the slot; others live
// in a refcounted value_box, so copying a node never copies a user value.
//
// Every node sits in whole 64-byte cache lines of its own (runtime/context_map.cpp, node_cache):
// threads that run a context read its nodes, and a neighbour written by another core would make
// those reads misses. Value boxes and task states use the same blocks (allocate_lines()).

#include <baton/detail/refcount.hpp>

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>

namespace baton::detail {

using var_key = std::uint64_t;  // a var's id: unique, never reused, never 0

/// A refcounted, type-erased holder for a value that does not fit inline.
struct value_box {
  std::atomic<std::uint32_t> refs{1};
  void (*destroy)(value_box*) noexcept;
};

/// A block of `bytes` rounded up to whole 64-byte cache lines, 64-aligned, from this thread's
/// free blocks (beyond the size of the largest map node, a 64-aligned heap block): what map
/// nodes, value boxes and task states live in. free_lines() takes the same size back.
void* allocate_lines(std::size_t bytes);
void free_lines(void* p, std::size_t bytes) noexcept;

template <class T>
struct typed_box final : value_box {
  T value;
  template <class U>
  explicit typed_box(U&& v) : value_box{{1}, &destroy_me}, value(static_cast<U&&>(v)) {}
  static void destroy_me(value_box* b) noexcept { delete static_cast<typed_box*>(b); }

  // In line blocks, as map nodes are (allocate_lines(), above): a set() of a boxed value takes
  // a block off this thread's free list instead of a malloc, and no box shares a line with
  // memory another thread writes. A value aligned beyond a line takes a heap block.
  static void* operator new(std::size_t bytes) { return allocate_lines(bytes); }
  static void operator delete(void* p, std::size_t bytes) noexcept { free_lines(p, bytes); }
  static void* operator new(std::size_t bytes, std::align_val_t a) {
    return a <= std::align_val_t{64} ? allocate_lines(bytes) : ::operator new(bytes, a);
  }
  static void operator delete(void* p, std::size_t bytes, std::align_val_t a) noexcept {
    if (a <= std::align_val_t{64}) {
      free_lines(p, bytes);
    } else {
      ::operator delete(p, bytes, a);
    }
  }
};

template <class T>
inline constexpr bool stored_inline = std::is_trivially_copyable_v<T> && sizeof(T) <= 8 &&
                                      alignof(T) <= 8;

inline constexpr std::uint64_t boxed_bit = std::uint64_t{1} << 63;

struct map_node;

/// One slot of a node: an entry (key, payload) or, when the node's child bit says so, a child.
struct slot {
  std::uint64_t key;  // var_key, with boxed_bit set when payload is a value_box*
  union {
    std::uint64_t bits;  // inline value, or value_box* when boxed
    map_node* child;
  };
};

inline constexpr std::uint8_t no_slot = 0xff;

struct map_node {
  std::atomic<std::uint32_t> refs;
  std::uint32_t entries;   // bitmap of positions holding an entry
  std::uint32_t children;  // bitmap of positions holding a child node
  std::uint32_t boxed;     // the entries whose payload is a value_box (owned references)
  std::uint32_t count;     // number of entries in this subtree
  std::uint8_t index[32];  // position -> slot index, no_slot when empty: lookups need no
                           // popcount (which g++ calls out of line without -mpopcnt)
  // How many cache lines the node's block spans (its size class, context_map.cpp): the slot
  // count alone does not say, since erase() fills a block made for one slot more. In what
  // would be padding before `version`.
  std::uint8_t lines;
  // Names this node as a context's root, for the token fast path: a value from fresh_version()
  // given to the new root of every set() and slow reset (never given twice in the process, so
  // equal versions mean the very same node even if its address was reused), 0 otherwise.
  // Written once, before the node is published.
  std::uint64_t version;
  // Which roots agree on the mirrored vars, so that a switch between them reports nothing
  // (sync_mirrors()): roots with equal stamps hold the very same entries for the vars of the
  // first stamp_mirrors(stamp) mirrors. A new root takes its parent's stamp when it changed no
  // mirrored var, else own_stamp() of itself; 0 when no mirror existed at its birth. A sync may
  // write it (the only writes to a published node; relaxed: any value a sync stores is valid
  // for the node on its own, whatever else it sees): one that finds a stamp made at another
  // mirror count than the one it read gives the root its own_stamp() for that count, and one
  // that finds the root's mirrored entries equal to those it last reported gives the root the
  // smaller of its stamp and the one that agreed with that report, so roots with equal entries
  // (tasks that set the same value each) converge on one stamp, matched inline from then on.
  mutable std::atomic<std::uint64_t> mirror_stamp;
  // What a hand-off captures of this node as a root, built on first use and kept (an owned
  // reference, released with the node): [0] without the never-vars (a spawn), [1] without the
  // tasks- and never-vars (a thread hand-off). nullptr = not built yet; a sentinel
  // (context_map.cpp) when the result is the empty map. Written once (compare-and-swap), read by
  // any thread sharing it.
  std::atomic<map_node*> filtered[2];
  slot slots[1];  // really popcount(entries | children) slots, in position order
};

/// The state of one context: the map, and who has it entered.
/// A task's state derives from it, so a task and its context are one allocation.
struct context_cell {
  // Who may touch root: 0 = nobody has it entered; an even value = the tag of the thread that
  // has it entered (only that thread reads or writes root); an odd value = (readers << 1) | 1,
  // threads reading it through a handle while nobody has it entered. See enter()/reader.
  std::atomic<std::uintptr_t> owner{0};
  map_node* root = nullptr;  // owned reference, nullptr = empty
  // A copy of root's mirror_stamp, or 0 when not known (then the root's own is read). It lets
  // a switch to this cell find "no mirrored value changed" in the cell alone (sync_mirrors()):
  // a resume touches the cell anyway, while a root made on another core would be a cache miss
  // on this one. A stamp once valid for a node stays valid for it, so the copy only goes stale
  // when root changes: a new cell starts at 0, and every later store to root goes through
  // set_root(), which stores this too. Like root, only the thread that has the cell entered
  // reads or writes it (the syncs that refresh it run in the current cell).
  std::uint64_t mirror_hint = 0;
  // Unique, never reused: given on the first set() (tokens compare it), or at creation for a
  // task. Which root a token's set() left behind is told by the root's own map_node::version,
  // so a cell needs no version of its own.
  std::uint64_t id = 0;
  // Last, so the 4 bytes after it are tail padding, which a derived task_base fills with its
  // own 4-byte field (task_base.hpp asserts the sizes).
  std::atomic<std::uint32_t> refs{1};

  context_cell();
  virtual ~context_cell();
  context_cell(const context_cell&) = delete;
  context_cell& operator=(const context_cell&) = delete;
};

/// Makes r (an owned reference moving in) c's root, and its mirror hint r's stamp (0 while no
/// mirror exists: the hint is then never read).
inline void set_root(context_cell* c, map_node* r) noexcept {
  c->root = r;
  // Relaxed: see map_node::mirror_stamp.
  c->mirror_hint = r != nullptr ? r->mirror_stamp.load(std::memory_order_relaxed) : 0;
}

/// Bytes of the blocks of allocate_lines() (map nodes, value boxes and task states) the calling
/// thread took and has not given back, minus those it gave back for other threads
/// (memory_bench: blocks are reused from slabs made earlier, which malloc's count does not see).
std::int64_t line_bytes_out_on_this_thread() noexcept;
/// Bytes of the slabs those blocks are carved from, made by all threads so far.
std::int64_t line_slab_bytes() noexcept;

/// A fresh id for a cell or a task (never 0, never reused).
std::uint64_t new_cell_id() noexcept;
/// A fresh version for map_node::version (never 0, never given twice in the process).
std::uint64_t fresh_version() noexcept;

void retain(context_cell* c) noexcept;
void release(context_cell* c) noexcept;
void retain(map_node* n) noexcept;
void release(map_node* n) noexcept;

/// References to map nodes that this thread dropped while other owners remained, kept to hand
/// back to the next retain() of the same node on this thread. Spawning from a populated
/// context retains the spawner's root and the child's end releases it: with a cache, the pair
/// costs no atomic instruction (the reference just moves from the cache to the next child).
/// Only deferring a decrement is ever done, never an increment, so no node dies early; a node
/// whose every reference is in the cache is freed at once. Loop threads install one (at most
/// `capacity` nodes stay alive longer than they must, until the thread next goes idle).
struct ref_cache {
  static constexpr unsigned capacity = 8;
  map_node* held[capacity] = {};
  unsigned count = 0;
};

/// The calling thread's cache, or nullptr (every release then decrements at once).
[[gnu::tls_model("initial-exec")]] extern constinit thread_local ref_cache* current_ref_cache;

/// Makes c this thread's cache (returns the previous one). Pass nullptr to stop deferring;
/// flush the old cache first.
ref_cache* install_ref_cache(ref_cache* c) noexcept;
/// Drops every reference c holds.
void flush(ref_cache& c) noexcept;

/// The cell of whatever runs on this thread now: a task, a context::run, or the thread's
/// implicit context (created on first set()). nullptr means "empty context".
/// constinit + initial-exec keep the access a single TLS load also from a shared libbaton;
/// see docs/design/context-structure.md and docs/benchmarks.md for the measurements.
[[gnu::tls_model("initial-exec")]] extern constinit thread_local context_cell* current_cell;

/// current_cell, or else this thread's implicit context, created now (a set() outside any
/// context makes one; the thread releases it when it ends).
context_cell* current_or_implicit();

/// Mirrors (context_var::on_switch): functions told, on each thread, the value of their var in
/// the current context whenever it changes there. Installed ones are never removed (a destroyed
/// var's mirror is switched off), so a thread may read the table without a lock.
struct mirror {
  // The var it reports, or 0 once that var is destroyed. Relaxed: each sync reads it afresh.
  std::atomic<var_key> key;
  // Calls the user's function with the value in s, or nullptr when s is null.
  void (*report)(const mirror& self, const slot* s) noexcept;
  mirror(var_key k, void (*r)(const mirror&, const slot*) noexcept) noexcept : key(k), report(r) {}
  virtual ~mirror() = default;
  mirror(const mirror&) = delete;
  mirror& operator=(const mirror&) = delete;
};

/// At most this many mirrors in a process (on_switch beyond it throws context_error).
inline constexpr unsigned max_mirrors = 64;

/// How many mirrors were ever installed: 0 means a switch of context costs this one load.
extern std::atomic<unsigned> mirror_count;

/// A stamp's two fields (see map_node::mirror_stamp): the node's version, unique and far below
/// 2^57, above 7 bits that count the mirrors it speaks for (at most max_mirrors = 64).
inline constexpr unsigned stamp_count_bits = 7;
inline std::uint64_t own_stamp(const map_node* root, unsigned mirrors) noexcept {
  return root->version << stamp_count_bits | mirrors;
}
inline constexpr unsigned stamp_mirrors(std::uint64_t stamp) noexcept {
  return static_cast<unsigned>(stamp & ((1u << stamp_count_bits) - 1));
}
/// The stamp of the empty map (version 0, a count no node has), and one that matches nothing.
inline constexpr std::uint64_t empty_stamp = 126;
inline constexpr std::uint64_t no_stamp = ~std::uint64_t{0};

/// Gives r, a new root made from parent (nullptr: the empty map) by a change of var `changed`
/// (0: of several vars), its mirror stamp. One relaxed load while no mirror exists.
void stamp_new_root_slow(map_node* r, const map_node* parent, var_key changed) noexcept;
inline void stamp_new_root(map_node* r, const map_node* parent, var_key changed) noexcept {
  // Relaxed: a root stamped 0 (or for fewer mirrors) before a new mirror is seen is restamped
  // by the first sync that meets it.
  if (mirror_count.load(std::memory_order_relaxed) != 0) stamp_new_root_slow(r, parent, changed);
}

/// What sync_mirrors() reads inline of this thread's mirror state (the front of mirror_view in
/// context.cpp), made at the thread's first sync with a mirror installed; nullptr before.
struct mirror_sync_state {
  // Stamps of roots whose mirrored entries are the ones last reported: the root of the last
  // sync, and the one before it when nothing changed between them and the two could not share
  // a stamp (the empty map and a map without mirrored values). no_stamp when unused; both valid
  // for `synced` mirrors only.
  std::uint64_t agreeing[2] = {no_stamp, no_stamp};
  unsigned synced = 0;  // how many mirrors existed at the last sync
};
[[gnu::tls_model(
    "initial-exec")]] extern constinit thread_local mirror_sync_state* this_thread_mirrors;

/// The out-of-line part of sync_mirrors(), given what it loaded: this thread's state (nullptr
/// before its first sync), the current cell (nullptr: the empty map), its root, the root's
/// stamp (empty_stamp for the empty map) and the mirror count (read relaxed). Reports each
/// mirrored var whose entry differs from the one last reported, records the stamp, and leaves
/// it in the cell's mirror hint.
void sync_mirrors_slow(mirror_sync_state* state, context_cell* c, const map_node* root,
                       std::uint64_t stamp, unsigned n) noexcept;

/// Called after every change of this thread's current context that code runs in next: reports
/// each mirrored var whose value differs from what this thread last reported. With no mirror
/// installed it costs one load. With mirrors, a switch to a root that agrees with the last
/// report (the same map, a map derived from it by sets of unmirrored vars, a map an earlier sync
/// found equal on the mirrored vars) is decided inline by comparing its stamp, read from the
/// cell's mirror hint; anything else goes out of line, compares each mirrored entry and
/// reports the ones that differ. always_inline: g++ would otherwise call it, and the call
/// costs more than the test.
[[gnu::always_inline]] inline void sync_mirrors() noexcept {
  // Relaxed: a thread that has not seen a new mirror yet reports to it at its next switch;
  // sync_mirrors_slow acquires the table itself.
  const unsigned n = mirror_count.load(std::memory_order_relaxed);
  if (n == 0) [[likely]]
    return;
  mirror_sync_state* const v = this_thread_mirrors;
  context_cell* const c = current_cell;
  const map_node* root = nullptr;
  std::uint64_t stamp = empty_stamp;
  if (c != nullptr) {
    root = c->root;
    stamp = c->mirror_hint;
    if (stamp == 0) [[unlikely]] {
      // Relaxed: see map_node::mirror_stamp.
      stamp = root != nullptr ? root->mirror_stamp.load(std::memory_order_relaxed) : empty_stamp;
    }
  }
  // Laid out so that a switch that reports falls through these tests to the call, as it does
  // through sync_mirrors_slow's (see there for why).
  if (v != nullptr && n == v->synced) [[likely]] {
    if ((stamp == v->agreeing[0]) | (stamp == v->agreeing[1])) return;
  }
  sync_mirrors_slow(v, c, root, stamp, n);
}

/// Installs m for var `name` (one per var, at most max_mirrors): context_error otherwise.
/// Reports the calling thread's current value at once.
void install_mirror(mirror* m, const std::string& name);
/// Switches off the mirror of key, if it has one (its var is being destroyed).
void remove_mirror(var_key key) noexcept;

/// This thread's tag for context_cell::owner (even, non-zero, unique among live threads).
inline std::uintptr_t thread_tag() noexcept {
  return reinterpret_cast<std::uintptr_t>(&current_cell);
}

/// Enters c on this thread: c becomes current_cell. Throws context_error naming the problem
/// when c is already entered on this or another thread; waits out concurrent readers.
void enter(context_cell* c);
/// For the scheduler: like enter() but returns false instead of throwing.
bool try_enter(context_cell* c) noexcept;
/// Leaves c (entered by enter/try_enter) and makes prev current again.
void leave(context_cell* c, context_cell* prev) noexcept;

/// Shared read access to a cell through a context handle, from any thread.
/// Throws context_error when another thread has the cell entered.
class cell_reader {
 public:
  explicit cell_reader(context_cell* c);
  ~cell_reader();
  cell_reader(const cell_reader&) = delete;
  cell_reader& operator=(const cell_reader&) = delete;
  const map_node* root() const noexcept { return cell_->root; }

 private:
  context_cell* cell_;
  bool counted_;  // false when this thread has the cell entered (no count taken)
};

/// find() from the second level down: the slot of key in child node n of a root, or nullptr.
inline const slot* find_below(const map_node* n, var_key key) noexcept {
  for (unsigned shift = 5; n != nullptr; shift += 5) {
    const unsigned pos = static_cast<unsigned>(key >> shift) & 31;
    const unsigned i = n->index[pos];
    if (i == no_slot) return nullptr;
    const slot& s = n->slots[i];
    if (((n->children >> pos) & 1) == 0) return (s.key & ~boxed_bit) == key ? &s : nullptr;
    n = s.child;
  }
  return nullptr;
}

/// Finds the slot of key in the map rooted at n, or nullptr. The first level is written out
/// here, so that a flat map (up to 32 vars of distinct low bits: the usual context) costs a
/// lookup with no loop at every call site; a key held in a child node goes to find_below().
inline const slot* find(const map_node* n, var_key key) noexcept {
  if (n == nullptr) return nullptr;
  const unsigned pos = static_cast<unsigned>(key) & 31;
  const unsigned i = n->index[pos];
  if (i == no_slot) return nullptr;
  const slot& s = n->slots[i];
  if (((n->children >> pos) & 1) != 0) [[unlikely]] {
    return find_below(s.child, key);
  }
  return (s.key & ~boxed_bit) == key ? &s : nullptr;
}

/// The value of an entry whose T does not fit inline, where its box holds it: valid while the
/// map holding the entry lives.
template <class T>
const T& boxed_value(const slot& s) noexcept {
  static_assert(!stored_inline<T>, "an inline value has no box: load<T>() copies it out");
  return static_cast<const typed_box<T>*>(reinterpret_cast<value_box*>(s.bits))->value;
}

template <class T>
T load(const slot& s) {
  if constexpr (stored_inline<T>) {
    // Through bytes and bit_cast: T need not be default-constructible, and no class object is
    // memcpy'd into (g++'s -Wclass-memaccess).
    std::array<unsigned char, sizeof(T)> raw;
    std::memcpy(raw.data(), &s.bits, sizeof(T));
    return std::bit_cast<T>(raw);
  } else {
    return boxed_value<T>(s);
  }
}

/// Makes an entry for key holding v (a new box when v does not fit inline).
template <class T, class U>
slot make_entry(var_key key, U&& v) {
  slot s{};
  if constexpr (stored_inline<T>) {
    s.key = key;
    const T tmp(static_cast<U&&>(v));
    std::memcpy(&s.bits, &tmp, sizeof(T));
  } else {
    s.key = key | boxed_bit;
    s.bits = reinterpret_cast<std::uint64_t>(
        static_cast<value_box*>(new typed_box<T>(static_cast<U&&>(v))));
  }
  return s;
}

/// How far a var's value flows (see baton::inherit), told by its key's low 5 bits, which are
/// its position in a root node: every tasks-var sits at root position 30, every never-var at
/// 31, and no always-var uses either. A hand-off therefore drops at most two root slots.
enum class flow_class : unsigned { always, tasks, never };
inline constexpr unsigned tasks_position = 30;
inline constexpr unsigned never_position = 31;

inline flow_class flow_of(var_key key) noexcept {
  switch (key & 31) {
    case tasks_position:
      return flow_class::tasks;
    case never_position:
      return flow_class::never;
    default:
      return flow_class::always;
  }
}

/// An implicit hand-off, as the root positions it drops.
enum class hand_off : std::uint32_t {
  task = std::uint32_t{1} << never_position,  // spawn, run()
  thread = (std::uint32_t{1} << never_position) | (std::uint32_t{1} << tasks_position),  // pool..
};

/// The root a hand-off of type h starts from (an owned reference, or nullptr), built once per
/// root and kept on it. Out of line: only reached when root holds a tasks- or never-var.
map_node* filtered_root(map_node* root, hand_off h);

/// The root that a context with this root hands to a hand-off of type h: root itself (retained)
/// unless it holds a var the hand-off must not carry. An owned reference, or nullptr.
inline map_node* capture_root(map_node* root, hand_off h) {
  if (root == nullptr) return nullptr;
  if (((root->entries | root->children) & static_cast<std::uint32_t>(h)) != 0) {
    return filtered_root(root, h);
  }
  retain(root);
  return root;
}

/// Releases an entry made by make_entry that never made it into a map.
void drop_entry(const slot& s) noexcept;

/// Persistent operations: return a new root (owned by the caller); the input is unchanged.
map_node* insert(const map_node* root, const slot& entry);  // takes over entry's box
/// Several vars that root does not hold, in one new node, when each takes a free position of
/// the root's own level (a root of few vars): one copy instead of one per var. nullptr, with
/// nothing taken over, when one would not; then insert() them one at a time. Else it takes
/// over every entry's box. n >= 1.
map_node* insert_new(const map_node* root, const slot* entries, std::size_t n);
map_node* erase(const map_node* root, var_key key);  // nullptr when the map is empty
std::size_t size(const map_node* root) noexcept;

}  // namespace baton::detail
