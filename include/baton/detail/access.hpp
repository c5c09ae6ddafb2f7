// SPDX-License-Identifier: BSL-1.0
// detail::access: the one door from baton's own code into the private parts of its public types.
#pragma once

// The public classes keep what only the runtime needs private and befriend this struct, so
// that a user of context, context_var, task, task_handle or loop_handle sees only the API of
// docs/reference. The members are templates on the class they open, so this header
// needs none of those classes complete (each is complete where a member is instantiated).

#include <memory>
#include <utility>

namespace baton {

class context;
class loop_handle;

namespace detail {

struct context_cell;
struct loop_gate;
struct task_base;

struct access {
  /// A context that adopts one reference to c (the caller gives it up).
  template <class Context = context>
  static Context adopt(context_cell* c) noexcept {
    return Context(c);
  }
  /// The cell behind a context (no reference taken).
  template <class Context>
  static context_cell* cell(const Context& c) noexcept {
    return c.cell_.get();
  }
  /// A context_var's key in every context map.
  template <class Var>
  static auto key(const Var& v) noexcept {
    return v.key_;
  }
  /// Takes the coroutine out of a task (it is empty afterwards).
  template <class Task>
  static auto release(Task& t) noexcept {
    return std::exchange(t.h_, {});
  }
  /// A handle that adopts one reference to a task's state (the caller gives it up).
  template <class Handle, class State>
  static Handle adopt_handle(State* s) noexcept {
    return Handle(s);
  }
  /// The task behind a handle (no reference taken).
  template <class Handle>
  static task_base* base(const Handle& h) noexcept {
    return h.s_.get();
  }
  /// A handle to the loop behind gate g.
  template <class LoopHandle = loop_handle>
  static LoopHandle make_loop_handle(std::shared_ptr<loop_gate> g) noexcept {
    return LoopHandle(std::move(g));
  }
};

}  // namespace detail
}  // namespace baton
