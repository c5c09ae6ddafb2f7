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
#include <baton/detail/context_map.hpp>

#include <cstddef>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

namespace baton {

class context {
 public:
  /// A new, empty context.
  context();
  context(const context& o) noexcept : cell_(o.cell_) { detail::retain(cell_); }
  context(context&& o) noexcept : cell_(std::exchange(o.cell_, nullptr)) {}
  context& operator=(context o) noexcept {
    std::swap(cell_, o.cell_);
    return *this;
  }
  ~context() {
    if (cell_ != nullptr) detail::release(cell_);
  }

  template <class F, class... A>
  std::invoke_result_t<F, A...> run(F&& f, A&&... a) {
    detail::context_cell* const prev = detail::current_cell;
    detail::enter(cell_);
    struct leave_on_exit {
      detail::context_cell* cell;
      detail::context_cell* prev;
      ~leave_on_exit() { detail::leave(cell, prev); }
    } guard{cell_, prev};
    return std::invoke(std::forward<F>(f), std::forward<A>(a)...);
  }

  template <class T>
  bool contains(const context_var<T>& var) const {
    detail::cell_reader r(cell_);
    return detail::find(r.root(), var.key()) != nullptr;
  }

  template <class T>
  std::optional<T> get(const context_var<T>& var) const {
    detail::cell_reader r(cell_);
    if (const detail::slot* s = detail::find(r.root(), var.key())) return detail::load<T>(*s);
    return std::nullopt;
  }

  std::size_t size() const;
  context copy() const;

  /// The same context (not equal contents): like Python's `is`.
  friend bool operator==(const context& a, const context& b) noexcept { return a.cell_ == b.cell_; }

  /// For the runtime: adopts one reference to c.
  static context adopt(detail::context_cell* c) noexcept { return context(c); }
  detail::context_cell* cell() const noexcept { return cell_; }

 private:
  explicit context(detail::context_cell* c) noexcept : cell_(c) {}
  detail::context_cell* cell_;
};

/// A snapshot of the current context (an empty context outside any).
context copy_context();

}  // namespace baton
