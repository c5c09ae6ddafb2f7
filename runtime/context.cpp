// SPDX-License-Identifier: BSL-1.0
// Contexts: cells, entering and leaving, the implicit per-thread context, the var registry.

#include <baton/context.hpp>

#include "var_registry.hpp"

#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace baton::detail {

[[gnu::tls_model("initial-exec")]] constinit thread_local context_cell* current_cell = nullptr;

namespace {

std::atomic<var_key> next_var_key{1};

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
  std::string (*describe)(const slot&);
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
  // A count of 1 is ours alone (nobody can copy a reference they do not hold), so the common
  // single-owner case skips the read-modify-write. acq_rel: the last owner sees every use.
  if (c->refs.load(std::memory_order_acquire) == 1 ||
      c->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    delete c;
  }
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
  if (try_enter(c)) return;
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
  std::uintptr_t s = cell_->owner.load(std::memory_order_relaxed);
  // release: our reads of root happen before a later enter() that may replace it.
  while (!cell_->owner.compare_exchange_weak(s, s == 3 ? 0 : s - 2, std::memory_order_release,
                                             std::memory_order_relaxed)) {
  }
}

var_key register_var(const std::string* name, std::string (*describe)(const slot&)) {
  const var_key key = next_var_key.fetch_add(1, std::memory_order_relaxed);
  var_registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.vars.emplace(key, var_info{name, describe});
  return key;
}

void unregister_var(var_key key) noexcept {
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
      out.emplace_back(*it->second.name, it->second.describe(n->slots[i]));
    }
  };
  visit(visit, root);
  return out;
}

void throw_lookup_error(const std::string& name) {
  throw lookup_error("baton: context var '" + name + "' has no value and no default");
}

}  // namespace baton::detail

namespace baton {

context::context() : cell_(new detail::context_cell) {}

std::size_t context::size() const {
  detail::cell_reader r(cell_);
  return detail::size(r.root());
}

context context::copy() const {
  detail::cell_reader r(cell_);
  auto* c = new detail::context_cell;
  detail::retain(const_cast<detail::map_node*>(r.root()));
  c->root = const_cast<detail::map_node*>(r.root());
  return context(c);
}

context copy_context() {
  auto* c = new detail::context_cell;
  if (const detail::context_cell* cur = detail::current_cell) {
    detail::retain(cur->root);
    c->root = cur->root;
  }
  return context::adopt(c);
}

}  // namespace baton
