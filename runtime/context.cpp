// SPDX-License-Identifier: BSL-1.0
// Contexts: cells, entering and leaving, the implicit per-thread context, the var registry.

#include <baton/context.hpp>

#include "var_registry.hpp"

#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace baton::detail {

[[gnu::tls_model("initial-exec")]] constinit thread_local context_cell* current_cell = nullptr;

namespace {

/// Var keys by flow: an always-var takes the next number whose low 5 bits are neither
/// tasks_position nor never_position; a tasks-var is (n << 5) | tasks_position and a never-var
/// (n << 5) | never_position, with n from a counter of their own. So every key is unique, and
/// every tasks- or never-var sits at its fixed root position (context_map.hpp).
std::atomic<var_key> next_var_key{1};
std::atomic<var_key> next_tasks_var{0};
std::atomic<var_key> next_never_var{0};

var_key new_var_key(inherit flow) noexcept {
  // Relaxed: only uniqueness matters.
  switch (flow) {
    case inherit::tasks:
      return next_tasks_var.fetch_add(1, std::memory_order_relaxed) << 5 | tasks_position;
    case inherit::never:
      // Relaxed (both counters): only uniqueness matters; nothing is published with a key.
      return next_never_var.fetch_add(1, std::memory_order_relaxed) << 5 | never_position;
    case inherit::always:
      break;
  }
  for (;;) {
    const var_key k = next_var_key.fetch_add(1, std::memory_order_relaxed);
    if ((k & 31) < tasks_position) return k;
  }
}

/// Owns this thread's implicit context (made on the first set() outside any context) and
/// releases it when the thread ends. The pointer in current_cell stays a plain,
/// trivially-destructible thread-local, so reading it is one load.
struct implicit_context {
  context_cell* cell = nullptr;
  ~implicit_context() {
    if (cell == nullptr) return;
    if (current_cell == cell) current_cell = nullptr;
    release(cell);
  }
};
thread_local implicit_context implicit;

struct var_info {
  const std::string* name;
  const var_ops* ops;
};

struct var_registry {
  std::mutex mutex;
  std::unordered_map<var_key, var_info> vars;
};

var_registry& registry() {
  static var_registry* r = new var_registry;  // leaked on purpose: vars may outlive statics
  return *r;
}

void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

}  // namespace

context_cell* current_or_implicit() {
  if (current_cell != nullptr) return current_cell;
  implicit.cell = new context_cell;
  current_cell = implicit.cell;
  return current_cell;
}

std::string var_name(var_key key) {
  var_registry& r = registry();
  std::lock_guard lock(r.mutex);
  const auto it = r.vars.find(key);
  return it != r.vars.end() ? *it->second.name : std::string("<destroyed var>");
}

context_cell::context_cell() = default;

namespace {

/// Numbers that must be unique in the process, handed out to each thread in blocks of 1024:
/// the common case pays no atomic, and no two threads ever get the same number.
struct number_blocks {
  std::atomic<std::uint64_t> next_block{1};
};
constinit number_blocks versions;
constinit number_blocks cell_ids;

struct thread_numbers {
  std::uint64_t next = 0;
  std::uint64_t end = 0;
};
[[gnu::tls_model("initial-exec")]] constinit thread_local thread_numbers thread_versions;
[[gnu::tls_model("initial-exec")]] constinit thread_local thread_numbers thread_cell_ids;

std::uint64_t take(number_blocks& global, thread_numbers& mine) noexcept {
  if (mine.next == mine.end) [[unlikely]] {
    constexpr std::uint64_t block = 1024;
    // Relaxed: only uniqueness matters.
    mine.next = global.next_block.fetch_add(block, std::memory_order_relaxed);
    mine.end = mine.next + block;
  }
  return mine.next++;
}

}  // namespace

/// Versions name a cell's root for the token fast path; a cell may be entered on one thread
/// after another, so they must be unique across threads, not only per cell.
std::uint64_t fresh_version() noexcept { return take(versions, thread_versions); }

std::uint64_t new_cell_id() noexcept { return take(cell_ids, thread_cell_ids); }

context_cell::~context_cell() { release(root); }

void retain(context_cell* c) noexcept {
  // Relaxed: a new handle is made from an existing one.
  c->refs.fetch_add(1, std::memory_order_relaxed);
}

void release(context_cell* c) noexcept {
  if (drop_ref(c->refs)) delete c;
}

bool try_enter(context_cell* c) noexcept {
  const std::uintptr_t mine = thread_tag();
  std::uintptr_t s = 0;
  // acquire: pairs with the release in leave() / ~cell_reader, so this thread sees the root
  // the previous owner left behind.
  while (!c->owner.compare_exchange_weak(s, mine, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
    if (s != 0 && (s & 1) == 0) return false;  // entered by a thread (maybe this one)
    if (s != 0) pause();                       // readers finish in a few nanoseconds
    s = 0;
  }
  current_cell = c;
  return true;
}

void enter(context_cell* c) {
  if (try_enter(c)) {
    sync_mirrors();
    return;
  }
  // Relaxed: only picks the error message; the failed try_enter already decided.
  const std::uintptr_t s = c->owner.load(std::memory_order_relaxed);
  throw context_error(s == thread_tag()
                          ? "baton: cannot enter the context: it is already entered on this thread"
                          : "baton: cannot enter the context: it is already entered on another "
                            "thread");
}

void leave(context_cell* c, context_cell* prev) noexcept {
  current_cell = prev;
  // release: publishes this thread's sets (root) to whoever enters or reads next.
  c->owner.store(0, std::memory_order_release);
}

cell_reader::cell_reader(context_cell* c) : cell_(c), counted_(true) {
  const std::uintptr_t mine = thread_tag();
  // acquire: see the root the last leave() published before reading it.
  std::uintptr_t s = c->owner.load(std::memory_order_acquire);
  for (;;) {
    if (s == mine) {  // entered by this thread: it is the only writer, so just read
      counted_ = false;
      return;
    }
    if (s != 0 && (s & 1) == 0) {
      throw context_error(
          "baton: cannot read the context: it is entered on another thread (read a copy)");
    }
    const std::uintptr_t next = s == 0 ? 3 : s + 2;  // (readers << 1) | 1
    // acquire: see the root published by the last leave().
    if (c->owner.compare_exchange_weak(s, next, std::memory_order_acquire,
                                       std::memory_order_acquire)) {
      return;
    }
  }
}

cell_reader::~cell_reader() {
  if (!counted_) return;
  // Relaxed: a first guess for the CAS below, which publishes with release.
  std::uintptr_t s = cell_->owner.load(std::memory_order_relaxed);
  // release: our reads of root happen before a later enter() that may replace it.
  while (!cell_->owner.compare_exchange_weak(s, s == 3 ? 0 : s - 2, std::memory_order_release,
                                             std::memory_order_relaxed)) {
  }
}

var_key register_var(const std::string* name, const var_ops* ops, inherit flow) {
  const var_key key = new_var_key(flow);
  var_registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.vars.emplace(key, var_info{name, ops});
  return key;
}

void unregister_var(var_key key) noexcept {
  remove_mirror(key);
  var_registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.vars.erase(key);
}

std::vector<std::pair<std::string, std::string>> describe_context(const map_node* root) {
  std::vector<std::pair<std::string, std::string>> out;
  if (root == nullptr) return out;
  var_registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto visit = [&](auto& self, const map_node* n) -> void {
    unsigned i = 0;
    for (std::uint32_t all = n->entries | n->children; all != 0; all &= all - 1, ++i) {
      if ((n->children & (all & -all)) != 0) {
        self(self, n->slots[i].child);
        continue;
      }
      const auto it = r.vars.find(n->slots[i].key & ~boxed_bit);
      if (it == r.vars.end()) continue;  // its var is gone; the value is unreachable
      out.emplace_back(*it->second.name, it->second.ops->describe(n->slots[i]));
    }
  };
  visit(visit, root);
  return out;
}

// ---------------------------------------------------------------------------------------------
// mirrors

std::atomic<unsigned> mirror_count{0};

namespace {

constinit std::atomic<mirror*> mirror_table[max_mirrors] = {};
constinit std::mutex mirror_mutex;  // installs and removals; syncs read the table lock-free

/// This thread's mirror state: what sync_mirrors() reads inline, and what it last reported.
/// Read and written on every switch that reports, so it is aligned to a cache line and fills
/// whole lines: a neighbour in the same line (malloc packs blocks 16 bytes apart), written by
/// another loop thread, made each of those switches a miss (a changed value on two loop
/// threads went from 4 to 19 ns per resume in a build whose blocks fell that way).
struct alignas(64) mirror_view : mirror_sync_state {
  // The entry last reported to mirror i (key 0, bits 0: nullptr was reported). A boxed entry is
  // retained, so its address cannot be reused for another value while it is compared against.
  slot reported[max_mirrors] = {};

  mirror_view() = default;
  mirror_view(const mirror_view&) = delete;
  mirror_view& operator=(const mirror_view&) = delete;
  ~mirror_view() {
    for (const slot& s : reported) {
      if (s.key != 0) drop_entry(s);
    }
  }
};

/// Set while this thread calls a mirror: a mirror that sets a var is not re-entered. A
/// thread-local of its own, not a field of the view, so that the one-mirror path of
/// sync_mirrors_slow() clears it after the call without keeping the view in a saved register.
[[gnu::tls_model("initial-exec")]] constinit thread_local bool reporting = false;

/// Owns this thread's view, made at the thread's first sync with a mirror installed, and
/// frees it when the thread ends. A separate object, so that the pointer read on every switch
/// is a constinit thread-local (one TLS load, no initialisation guard).
struct mirror_view_owner {
  std::unique_ptr<mirror_view> view;
  ~mirror_view_owner();
};
thread_local mirror_view_owner this_thread_view_owner;
// Set once the owner is destroyed: a switch of context made by a later thread-exit destructor
// (an implicit context released) reports nothing rather than make a view nobody frees.
constinit thread_local bool this_thread_view_gone = false;

mirror_view_owner::~mirror_view_owner() {
  this_thread_view_gone = true;
  this_thread_mirrors = nullptr;
  view.reset();
}

mirror_view* this_thread_view() {
  if (this_thread_mirrors == nullptr) {
    if (this_thread_view_gone) return nullptr;
    this_thread_view_owner.view = std::make_unique<mirror_view>();
    this_thread_mirrors = this_thread_view_owner.view.get();
  }
  return static_cast<mirror_view*>(this_thread_mirrors);
}

}  // namespace

[[gnu::tls_model("initial-exec")]] constinit thread_local mirror_sync_state* this_thread_mirrors =
    nullptr;

void stamp_new_root_slow(map_node* r, const map_node* parent, var_key changed) noexcept {
  // acquire: the table entries [0, n) stored before the count are seen.
  const unsigned n = mirror_count.load(std::memory_order_acquire);
  // Relaxed: see map_node::mirror_stamp.
  const std::uint64_t inherited =
      parent != nullptr ? parent->mirror_stamp.load(std::memory_order_relaxed) : 0;
  // The parent's stamp carries over when it speaks for the same mirrors (a parent stamped for
  // fewer is restamped when a sync meets it) and the change touched none of their vars.
  bool keep = changed != 0 && inherited != 0 && stamp_mirrors(inherited) == n;
  for (unsigned i = 0; keep && i < n; ++i) {
    // Relaxed: the entry was acquired with the count; a key switched off concurrently belongs
    // to a destroyed var, whose mirror reports nothing more.
    keep = mirror_table[i].load(std::memory_order_relaxed)->key.load(std::memory_order_relaxed) !=
           changed;
  }
  r->mirror_stamp.store(keep ? inherited : own_stamp(r, n), std::memory_order_relaxed);
}

namespace {

/// Whether `now`, a root's entry for a mirrored var (nullptr: none), is the one last reported.
bool same_entry(const slot* now, const slot& last) noexcept {
  return now == nullptr ? last.key == 0 : now->key == last.key && now->bits == last.bits;
}

/// After a sync that found root's mirrored entries equal to the last report: root holds the
/// entries the stamps in agreeing[] stand for, so either stamp is valid for it. Both keep the
/// smaller one (the root through a relaxed store, see map_node::mirror_stamp; c, the cell whose
/// root it is, in its hint): roots with equal entries end up with one stamp, which every thread
/// then matches inline. An empty_stamp (the empty map's) cannot be given to a node.
void agree(mirror_view& v, context_cell* c, const map_node* root, std::uint64_t stamp,
           unsigned n) noexcept {
  const std::uint64_t agreed = v.agreeing[0];
  if (root != nullptr && agreed < stamp && stamp_mirrors(agreed) == n) {
    root->mirror_stamp.store(agreed, std::memory_order_relaxed);
    c->mirror_hint = agreed;
    return;  // agreeing[] already holds it
  }
  if (c != nullptr) c->mirror_hint = stamp;
  v.agreeing[1] = agreed;  // the previous root agrees with the report too
  v.agreeing[0] = stamp;
}

/// Every case of sync_mirrors_slow(): any number of mirrors, boxed values, a thread's first
/// sync, a new mirror count.
[[gnu::noinline]] void sync_all_mirrors(mirror_sync_state* state, context_cell* c,
                                        const map_node* root, std::uint64_t stamp,
                                        unsigned n) noexcept {
  // Out of memory for the view (1 KiB) ends the process here (noexcept), as a failed frame
  // allocation would: a mirror left wrong would be a silent wrong answer.
  mirror_view* const vp = state != nullptr ? static_cast<mirror_view*>(state) : this_thread_view();
  if (vp == nullptr || reporting) return;
  mirror_view& v = *vp;
  if (root != nullptr && stamp_mirrors(stamp) != n) {
    // A stamp made at another count (0, or fewer mirrors; or more, seen by a thread that has
    // not read the new count yet) says nothing for this one: the root gets its own stamp for n,
    // the same value from every thread at this count (see map_node::mirror_stamp).
    stamp = own_stamp(root, n);
    root->mirror_stamp.store(stamp, std::memory_order_relaxed);
  }
  if (c != nullptr) c->mirror_hint = stamp;
  if (n != v.synced) {
    v.agreeing[0] = v.agreeing[1] = no_stamp;  // they speak for fewer mirrors
    v.synced = n;
  } else if (stamp == v.agreeing[0] || stamp == v.agreeing[1]) {
    return;
  }
  reporting = true;
  bool reported = false;
  for (unsigned i = 0; i < n; ++i) {
    // Relaxed: stored before the count this thread acquired.
    mirror* const m = mirror_table[i].load(std::memory_order_relaxed);
    // Relaxed: a mirror switched off concurrently is a var destroyed while in use (see
    // context_var's contract); the record itself stays valid.
    const var_key key = m->key.load(std::memory_order_relaxed);
    if (key == 0) continue;
    slot& last = v.reported[i];
    const slot* const now = find(root, key);
    if (same_entry(now, last)) continue;
    const slot before = last;
    if (now != nullptr && (now->key & boxed_bit) != 0) {
      // Relaxed: a new reference from the one the current root holds.
      reinterpret_cast<value_box*>(now->bits)->refs.fetch_add(1, std::memory_order_relaxed);
    }
    last = now != nullptr ? *now : slot{};
    m->report(*m, now);
    if ((before.key & boxed_bit) != 0) drop_entry(before);
    reported = true;
  }
  reporting = false;
  if (reported) {
    v.agreeing[0] = stamp;  // the root of this sync agrees with the new report, nothing else
    v.agreeing[1] = no_stamp;
    return;
  }
  agree(v, c, root, stamp, n);
}

}  // namespace

void sync_mirrors_slow(mirror_sync_state* state, context_cell* c, const map_node* root,
                       std::uint64_t stamp, unsigned n) noexcept {
  // The caller loaded n relaxed; this fence makes it an acquire of the count, so the table
  // entries [0, n) stored before it are seen.
  std::atomic_thread_fence(std::memory_order_acquire);
  // One mirror in the process, a thread that synced at that count, root stamped for it, no
  // report running, and inline values (no box to retain or drop): the common case, done here
  // with no loop, and with only the flag to clear after the call. Everything else:
  // sync_all_mirrors().
  // The hints lay the path out for a changed value, the case it exists for: every test falls
  // through on the way to the call. Taken branches here would crowd the branch history from
  // which the processor predicts where the resumed task continues (a mispredicted resume costs
  // more than this whole path).
  if (__builtin_expect(n == 1 && state != nullptr && state->synced == 1, 1) && !reporting &&
      (__builtin_expect(root != nullptr, 1) ? stamp_mirrors(stamp) == 1 : true)) [[likely]] {
    mirror_view& v = *static_cast<mirror_view*>(state);
    // Relaxed: as in sync_all_mirrors().
    const mirror& m = *mirror_table[0].load(std::memory_order_relaxed);
    const var_key key = m.key.load(std::memory_order_relaxed);
    // key 0: the mirror is being switched off (its var destroyed); find() is not asked for it.
    const slot* const now = key != 0 ? find(root, key) : nullptr;
    const slot entry = now != nullptr ? *now : slot{};
    slot& last = v.reported[0];
    if (key != 0 && ((last.key | entry.key) & boxed_bit) == 0) [[likely]] {
      // same_entry() as one test (reported[] holds bits 0 with key 0).
      if (((entry.key ^ last.key) | (entry.bits ^ last.bits)) == 0) [[unlikely]] {
        return agree(v, c, root, stamp, 1);
      }
      last = entry;
      // Before the call: stamp need not outlive it (a sync from inside the mirror returns at
      // once, see reporting).
      v.agreeing[0] = stamp;
      v.agreeing[1] = no_stamp;
      // Usually the stamp came from the hint: no store then.
      if (c != nullptr && c->mirror_hint != stamp) c->mirror_hint = stamp;
      reporting = true;
      m.report(m, now);
      reporting = false;
      return;
    }
  }
  sync_all_mirrors(state, c, root, stamp, n);
}

void install_mirror(mirror* m, const std::string& name) {
  {
    std::lock_guard lock(mirror_mutex);
    // Relaxed loads and stores of the table here: installs and removals hold mirror_mutex,
    // which orders them; the release store of the count publishes the new entry to syncs.
    const unsigned n = mirror_count.load(std::memory_order_relaxed);
    const var_key key = m->key.load(std::memory_order_relaxed);
    for (unsigned i = 0; i < n; ++i) {
      if (mirror_table[i].load(std::memory_order_relaxed)->key.load(std::memory_order_relaxed) ==
          key) {
        throw context_error("baton: context var '" + name +
                            "' already has a mirror (on_switch() installs one per var)");
      }
    }
    if (n == max_mirrors) {
      throw context_error("baton: cannot install a mirror for context var '" + name +
                          "': a process has at most " + std::to_string(max_mirrors) + " mirrors");
    }
    mirror_table[n].store(m, std::memory_order_relaxed);  // relaxed: the count publishes it
    // release: a thread that reads the new count sees the entry.
    mirror_count.store(n + 1, std::memory_order_release);
  }
  sync_mirrors();  // the installing thread's mirror is right at once (its count is new)
}

void remove_mirror(var_key key) noexcept {
  std::lock_guard lock(mirror_mutex);
  // Relaxed: under mirror_mutex, as in install_mirror(). A sync that misses the 0 reports once
  // more to a record that stays valid (see sync_mirrors_slow).
  const unsigned n = mirror_count.load(std::memory_order_relaxed);
  for (unsigned i = 0; i < n; ++i) {
    mirror* const m = mirror_table[i].load(std::memory_order_relaxed);
    if (m->key.load(std::memory_order_relaxed) == key) m->key.store(0, std::memory_order_relaxed);
  }
}

// ---------------------------------------------------------------------------------------------
// reading a context as a mapping

namespace {

/// The root of c, retained, read through the owner word (context_error when another thread
/// has c entered).
map_node* retained_root(context_cell* c) {
  cell_reader r(c);
  auto* root = const_cast<map_node*>(r.root());
  retain(root);
  return root;
}

template <class F>
void for_each_slot(const map_node* n, F&& f) {
  if (n == nullptr) return;
  unsigned i = 0;
  for (std::uint32_t all = n->entries | n->children; all != 0; all &= all - 1, ++i) {
    if ((n->children & (all & -all)) != 0) {
      for_each_slot(n->slots[i].child, f);
    } else {
      f(n->slots[i]);
    }
  }
}

}  // namespace

context_listing::context_listing(context_cell* c) : root_(retained_root(c)) {
  try {
    var_registry& r = registry();
    std::lock_guard lock(r.mutex);
    for_each_slot(root_, [&](const slot& s) {
      const auto it = r.vars.find(s.key & ~boxed_bit);
      if (it == r.vars.end()) return;  // its var is gone; the value is unreachable
      entries_.push_back(context_entry(s, *it->second.name, it->second.ops));
    });
  } catch (...) {
    release(root_);
    throw;
  }
}

context_listing::~context_listing() { release(root_); }

bool equal_contents(context_cell* a, context_cell* b) {
  if (a == b) return true;
  map_node* const ra = retained_root(a);
  map_node* rb = nullptr;
  try {
    rb = retained_root(b);
  } catch (...) {
    release(ra);
    throw;
  }
  struct drop_roots {
    map_node* a;
    map_node* b;
    ~drop_roots() {
      release(a);
      release(b);
    }
  } guard{ra, rb};
  if (ra == rb) return true;
  if (size(ra) != size(rb)) return false;
  // Pairs whose entries differ: compared by their var's equality, found without the lock held
  // while user code (operator==) runs.
  std::vector<std::pair<const slot*, const slot*>> differing;
  bool same_keys = true;
  for_each_slot(ra, [&](const slot& s) {
    const slot* o = find(rb, s.key & ~boxed_bit);
    if (o == nullptr || o->key != s.key) {
      same_keys = false;
    } else if (o->bits != s.bits) {
      differing.emplace_back(&s, o);
    }
  });
  if (!same_keys) return false;
  std::vector<const var_ops*> ops(differing.size(), nullptr);
  {
    var_registry& r = registry();
    std::lock_guard lock(r.mutex);
    for (std::size_t i = 0; i < differing.size(); ++i) {
      const auto it = r.vars.find(differing[i].first->key & ~boxed_bit);
      if (it != r.vars.end()) ops[i] = it->second.ops;
    }
  }
  for (std::size_t i = 0; i < differing.size(); ++i) {
    // A destroyed var's values compare by identity (already known to differ).
    if (ops[i] == nullptr || !ops[i]->equal(*differing[i].first, *differing[i].second)) {
      return false;
    }
  }
  return true;
}

void throw_lookup_error(const std::string& name) {
  throw lookup_error("baton: context var '" + name + "' has no value and no default");
}

}  // namespace baton::detail

namespace baton {

context::context() : cell_(new detail::context_cell) {}

std::size_t context::size() const {
  detail::cell_reader r(cell_.get());
  return detail::size(r.root());
}

context context::copy() const {
  detail::cell_reader r(cell_.get());
  auto* c = new detail::context_cell;
  detail::retain(const_cast<detail::map_node*>(r.root()));
  c->root = const_cast<detail::map_node*>(r.root());
  return context(c);
}

bool context::equal_values(const context& other) const {
  return detail::equal_contents(cell_.get(), other.cell_.get());
}

namespace detail {

context capture_context(hand_off h) {
  auto* c = new context_cell;
  if (const context_cell* cur = current_cell) {
    try {
      c->root = capture_root(cur->root, h);
    } catch (...) {
      delete c;
      throw;
    }
  }
  return access::adopt(c);
}

}  // namespace detail

context copy_context() {
  auto* c = new detail::context_cell;
  if (const detail::context_cell* cur = detail::current_cell) {
    detail::retain(cur->root);
    c->root = cur->root;
  }
  return detail::access::adopt(c);
}

}  // namespace baton
