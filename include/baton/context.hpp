// SPDX-License-Identifier: BSL-1.0
// context: a snapshot of context_var values, with reference semantics like Python's Context.
#pragma once

// Contract:
//   context()        a new, empty context.
//   run(f, a...)     enters the context on this thread, calls f(a...), leaves it and returns
//                    f's result; the previous context is restored also when f throws.
//                    context_error if this context is already entered, on this or any thread.
//   get(var)         the var's value in this context (var defaults ignored), else nullopt.
//   contains(var)    whether the var has a value here.   size()  how many vars have one.
//   copy()           an independent snapshot, O(1): later sets on either side are invisible
//                    to the other.
//   copy_context()   a snapshot of the current context (an empty context outside any).
//   copy() and copy_context() are explicit copies: they copy every var, whatever its flow
//   (var_options); implicit hand-offs (spawn, to_thread, ...) drop what the flow says.
//   for_each(f)      calls f(const context_entry&) for each (var, value) pair, in no set order:
//                    the var's name(), its value_text(), flow(), and get(var) typed (nullopt
//                    for another var). Values of destroyed vars are skipped. f runs on a
//                    snapshot, so it may enter or change this context.
//   equal_values(o)  whether o holds the same vars with equal values (operator== of T when it
//                    has one, else the very same value); O(1) when they share their map.
//   a == b           identity (the same context), like Python's `is`, not equal contents.
// Copying a `context` object copies the handle (both name one context), like Python objects.
// Thread-safety: handles may be copied, compared and destroyed on any thread. get/contains/
// size/copy may be called from any thread, concurrently, while no other thread has the context
// entered; when one has, they throw context_error (read a copy instead). run() of one context
// on two threads at once is refused with context_error.
//
// Example:
//   baton::context_var<int> depth("depth");
//   baton::context ctx;                             // empty
//   ctx.run([&] { depth.set(1); });
//   assert(ctx.get(depth) == 1 && !depth.try_get());

#include <baton/context_var.hpp>
#include <baton/detail/access.hpp>
#include <baton/detail/context_map.hpp>
#include <baton/detail/debug_hooks.hpp>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>
#include <type_traits>
#include <utility>

namespace baton {

class context;

/// One (var, value) pair of a context, as context::for_each shows it (valid during the call).
class context_entry {
 public:
  /// The var's name.
  const std::string& name() const noexcept { return name_; }
  /// The value as text: strings as they are, numbers by std::to_string, others "<value>".
  std::string value_text() const { return ops_->describe(slot_); }
  /// How far the var's value flows.
  inherit flow() const noexcept { return detail::inherit_of(slot_.key & ~detail::boxed_bit); }
  /// Whether this entry is var's.
  template <class T>
  bool is(const context_var<T>& var) const noexcept {
    return (slot_.key & ~detail::boxed_bit) == detail::access::key(var);
  }
  /// The value, if this entry is var's; nullopt otherwise.
  template <class T>
  std::optional<T> get(const context_var<T>& var) const {
    if (!is(var)) return std::nullopt;
    return detail::load<T>(slot_);
  }

  context_entry(const detail::slot& s, std::string name, const detail::var_ops* ops)
      : slot_(s), name_(std::move(name)), ops_(ops) {}

 private:
  detail::slot slot_;  // its box, if any, held by the listing's map
  std::string name_;   // a copy: the var may be destroyed while f runs
  const detail::var_ops* ops_;
};

namespace detail {

/// The entries of a context's map with their vars' names, holding the map while it lives.
class context_listing {
 public:
  explicit context_listing(context_cell* c);
  ~context_listing();
  context_listing(const context_listing&) = delete;
  context_listing& operator=(const context_listing&) = delete;
  const std::vector<context_entry>& entries() const noexcept { return entries_; }

 private:
  map_node* root_;
  std::vector<context_entry> entries_;
};

bool equal_contents(context_cell* a, context_cell* b);

/// What an implicit hand-off of type h takes of the current context: a new context without
/// the vars whose flow stops there (context_var's contract). O(1); see context_map.hpp.
context capture_context(hand_off h);

/// How context::run() leaves c: c was entered on this thread, unless the function suspended
/// inside and came back on another thread (a fiber that moved), which debug mode reports.
inline void leave_run(context_cell* c, context_cell* prev) noexcept {
  // relaxed: only the entering thread stores its tag here, and it compares with its own.
  if (c->owner.load(std::memory_order_relaxed) != thread_tag()) [[unlikely]] {
    report_left_elsewhere(c);
  }
  leave(c, prev);
}
}  // namespace detail

class context {
 public:
  /// A new, empty context.
  context();

  template <class F, class... A>
  std::invoke_result_t<F, A...> run(F&& f, A&&... a) {
    detail::context_cell* const prev = detail::current_cell;
    detail::enter(cell_.get());
    struct leave_on_exit {
      detail::context_cell* cell;
      detail::context_cell* prev;
      ~leave_on_exit() {
        detail::leave_run(cell, prev);
        detail::sync_mirrors();
      }
    } guard{cell_.get(), prev};
    return std::invoke(std::forward<F>(f), std::forward<A>(a)...);
  }

  template <class T>
  bool contains(const context_var<T>& var) const {
    detail::cell_reader r(cell_.get());
    return detail::find(r.root(), detail::access::key(var)) != nullptr;
  }

  template <class T>
  std::optional<T> get(const context_var<T>& var) const {
    detail::cell_reader r(cell_.get());
    const detail::slot* s = detail::find(r.root(), detail::access::key(var));
    if (s != nullptr) return detail::load<T>(*s);
    return std::nullopt;
  }

  std::size_t size() const;
  context copy() const;

  template <class F>
  void for_each(F&& f) const {
    const detail::context_listing listing(cell_.get());
    for (const context_entry& e : listing.entries()) f(e);
  }

  bool equal_values(const context& other) const;

  /// The same context (not equal contents): like Python's `is`.
  friend bool operator==(const context& a, const context& b) noexcept {
    return a.cell_.get() == b.cell_.get();
  }

 private:
  friend struct detail::access;  // adopt() and cell(), for the runtime
  explicit context(detail::context_cell* c) noexcept : cell_(c) {}
  detail::counted_ref<detail::context_cell, &detail::retain, &detail::release> cell_;
};

/// A snapshot of the current context (an empty context outside any).
context copy_context();

}  // namespace baton
