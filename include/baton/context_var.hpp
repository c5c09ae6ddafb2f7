// SPDX-License-Identifier: BSL-1.0
// context_var<T>: an ambient value that follows the task, like Python's contextvars.ContextVar.
#pragma once

// Contract (PEP 567 semantics):
//   get()          the value in the current context, else the var's default, else lookup_error.
//   get(fallback)  the value in the current context, else fallback (even when a default exists).
//   try_get()      like get(), nullopt instead of lookup_error.
//   set(v)         sets v in the current context and returns a token that can undo it.
//   reset(t)       restores the value (or absence) from before t's set; context_error on misuse
//                  (token used, made by another var or in another context), before any change.
// How far a value flows (var_options::flow, fixed at construction; flow() tells it):
//   inherit::always  (default) every implicit hand-off carries the value (PEP 567).
//   inherit::tasks   spawned tasks (spawn, task_group::spawn, spawn_fiber, run's main task) see
//                    it; work handed to another thread (to_thread, run_in_executor,
//                    bind_context, start_thread, context_executor, loop_handle) starts without.
//   inherit::never   only the context that set it: every spawn and hand-off starts without.
//   Explicit copies (copy_context(), context::copy(), spawn(t, ctx)) copy every var.
// on_switch(f): a mirror. From then on, on every thread, f(p) is called whenever the var's value
//   in that thread's current context changes (set, reset, a task resuming on it, context::run
//   entering or leaving, a pool job starting or ending, a plain Asio handler of the loop
//   starting): p points to the value (valid during the call only), or is nullptr when the
//   context has none (the default does not count). Called before any code of the new context
//   runs, never when the value did not change, and at once on the installing thread. A thread
//   reports its first value at its next switch. One mirror per var, at most 64 in a process:
//   context_error otherwise. f must not throw (that ends the program, as from a destructor);
//   it must not set or reset vars (that is not reported). Destroy a mirrored var only when no
//   thread uses it. A program with no mirror pays one load per switch for the feature.
//   f is a std::function or any callable taking const T* (a lambda is stored as it is and
//   called directly); an empty one (nullptr, a null function pointer) is a context_error.
// "The current context" is the context of what runs on this thread now: a task, a
// context::run(), or else the thread's own implicit context.
// A var is non-copyable and non-movable: its identity is its address and a unique id that is
// never reused, so a var created later never sees an older var's values.
// Values: any copy-constructible T. Trivially copyable values up to 8 bytes are stored inline,
// others in a refcounted box shared by every context that holds them; a value lives as long as
// the last context holding it, also after the var itself is destroyed.
// Cost: get() is one thread-local load plus a trie lookup (one node up to 32 vars);
// set() copies one path of the trie; see docs/benchmarks.md.
// Thread-safety: get/set/reset act on the calling thread's current context only, so concurrent
// calls on different threads never interfere. Constructing and destroying vars is thread-safe.
//
// Example:
//   baton::context_var<std::string> user("user");
//   auto t = user.set("ada");
//   assert(user.get() == "ada");
//   user.reset(t);              // user.try_get() == std::nullopt again

#include <baton/detail/access.hpp>
#include <baton/detail/context_map.hpp>
#include <baton/errors.hpp>
#include <baton/token.hpp>

#include <concepts>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace baton {

/// How far a var's value flows through implicit hand-offs (see the contract above).
enum class inherit { always, tasks, never };

struct var_options {
  inherit flow = inherit::always;
};

namespace detail {

/// The functions the runtime needs for a var of type T (names, equality, mirrors).
struct var_ops {
  std::string (*describe)(const slot&);
  bool (*equal)(const slot&, const slot&);
};

var_key register_var(const std::string* name, const var_ops* ops, inherit flow);

/// The public name of a key's flow class (context_var::flow, context_entry::flow).
inline inherit inherit_of(var_key key) noexcept {
  switch (flow_of(key)) {
    case flow_class::tasks:
      return inherit::tasks;
    case flow_class::never:
      return inherit::never;
    default:
      return inherit::always;
  }
}
void unregister_var(var_key key) noexcept;
[[noreturn]] void throw_lookup_error(const std::string& name);

template <class T>
std::string describe_value(const slot& s) {
  if constexpr (std::is_convertible_v<const T&, std::string>) {
    return std::string(load<T>(s));
  } else if constexpr (std::is_arithmetic_v<T>) {
    return std::to_string(load<T>(s));
  } else {
    return "<value>";
  }
}

template <class T>
bool equal_values(const slot& a, const slot& b) {
  if (a.bits == b.bits) return true;  // the same inline bits, or the same box
  if constexpr (stored_inline<T>) {
    return false;  // inline values compare by their bits
  } else if constexpr (std::equality_comparable<T>) {
    return load<T>(a) == load<T>(b);
  } else {
    return false;  // no operator==: equal only when it is the very same value
  }
}

template <class T>
inline constexpr var_ops ops_of{&describe_value<T>, &equal_values<T>};

/// The mirror of a var of type T calling f, any callable taking const T* (a lambda is called
/// directly, with no std::function in between: the report is the switch's own cost).
template <class T, class F>
struct typed_mirror final : mirror {
  mutable F f;  // mutable: called like std::function calls its target, non-const
  typed_mirror(var_key k, F fn) : mirror(k, &report_value), f(std::move(fn)) {}
  static void report_value(const mirror& self, const slot* s) noexcept {
    const auto& m = static_cast<const typed_mirror&>(self);
    if (s == nullptr) {
      std::invoke(m.f, static_cast<const T*>(nullptr));
    } else if constexpr (stored_inline<T>) {
      const T v = load<T>(*s);
      std::invoke(m.f, &v);
    } else {
      std::invoke(m.f,
                  &static_cast<const typed_box<T>*>(reinterpret_cast<value_box*>(s->bits))->value);
    }
  }
};

}  // namespace detail

template <class T>
class context_var {
  static_assert(std::is_copy_constructible_v<T>,
                "baton: context_var<T> needs a copyable T (get() returns a copy): for a "
                "move-only value use context_var<std::shared_ptr<const T>>");
  static_assert(!std::is_reference_v<T>,
                "baton: context_var<T> holds values, not references: use context_var<T*> or "
                "context_var<std::shared_ptr<T>>");

 public:
  explicit context_var(std::string name) : context_var(std::move(name), var_options{}) {}
  context_var(std::string name, var_options opts)
      : name_(std::move(name)), key_(detail::register_var(&name_, &detail::ops_of<T>, opts.flow)) {}
  context_var(std::string name, T default_value)
      : context_var(std::move(name), std::move(default_value), var_options{}) {}
  context_var(std::string name, T default_value, var_options opts)
      : name_(std::move(name)),
        default_(std::move(default_value)),
        key_(detail::register_var(&name_, &detail::ops_of<T>, opts.flow)) {}
  ~context_var() { detail::unregister_var(key_); }
  context_var(const context_var&) = delete;
  context_var& operator=(const context_var&) = delete;

  const std::string& name() const noexcept { return name_; }

  T get() const {
    if (const detail::slot* s = find_current()) return detail::load<T>(*s);
    if (default_) return *default_;
    detail::throw_lookup_error(name_);
  }

  T get(T fallback) const {
    if (const detail::slot* s = find_current()) return detail::load<T>(*s);
    return fallback;
  }

  std::optional<T> try_get() const {
    if (const detail::slot* s = find_current()) return detail::load<T>(*s);
    return default_;
  }

  token<T> set(T value) {
    const detail::slot entry = detail::make_entry<T>(key_, std::move(value));
    return token<T>(detail::set_entry(entry, this));
  }

  void reset(const token<T>& t) { detail::reset_entry(t.s_.get(), key_, this, name_); }

  /// How far the var's value flows through implicit hand-offs.
  inherit flow() const noexcept { return detail::inherit_of(key_); }

  /// Installs the var's mirror (see the contract): context_error if it has one already, or
  /// if f is empty.
  void on_switch(std::function<void(const T* value)> f) { install_mirror(std::move(f)); }

  /// The same for any other callable taking const T* (a lambda, a function pointer): it is
  /// stored as it is and called without a std::function in between.
  /// (A std::function argument takes the overload above: a non-template wins a tie.)
  template <std::invocable<const T*> F>
  void on_switch(F f) {
    install_mirror(std::move(f));
  }

 private:
  template <class F>
  void install_mirror(F f) {
    // Empty: a null function pointer, or a wrapper (std::function and the like) holding none.
    bool empty = false;
    if constexpr (std::is_pointer_v<F> || std::is_member_pointer_v<F>) {
      empty = f == nullptr;
    } else if constexpr (requires { f.operator bool(); }) {
      empty = !f.operator bool();
    }
    if (empty)
      throw context_error("baton: on_switch() of context var '" + name_ + "' needs a function");
    auto m = std::make_unique<detail::typed_mirror<T, F>>(key_, std::move(f));
    detail::install_mirror(m.get(), name_);
    m.release();  // the table keeps it for the rest of the process
  }

  friend struct detail::access;  // key(), for the runtime
  const detail::slot* find_current() const noexcept {
    const detail::context_cell* c = detail::current_cell;
    return c != nullptr ? detail::find(c->root, key_) : nullptr;
  }

  std::string name_;
  std::optional<T> default_;
  detail::var_key key_;
};

}  // namespace baton
