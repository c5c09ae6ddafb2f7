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

#include <baton/detail/context_map.hpp>
#include <baton/errors.hpp>
#include <baton/token.hpp>

#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace baton {

namespace detail {
var_key register_var(const std::string* name, std::string (*describe)(const slot&));
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
}  // namespace detail

template <class T>
class context_var {
  static_assert(std::is_copy_constructible_v<T>, "context_var<T> needs a copyable T");
  static_assert(!std::is_reference_v<T>, "context_var<T> holds values, not references");

 public:
  explicit context_var(std::string name)
      : name_(std::move(name)), key_(detail::register_var(&name_, &detail::describe_value<T>)) {}
  context_var(std::string name, T default_value)
      : name_(std::move(name)),
        default_(std::move(default_value)),
        key_(detail::register_var(&name_, &detail::describe_value<T>)) {}
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

  void reset(const token<T>& t) { detail::reset_entry(t.s_, key_, this, name_); }

  /// The var's unique id (for the runtime and introspection).
  detail::var_key key() const noexcept { return key_; }

 private:
  const detail::slot* find_current() const noexcept {
    const detail::context_cell* c = detail::current_cell;
    return c != nullptr ? detail::find(c->root, key_) : nullptr;
  }

  std::string name_;
  std::optional<T> default_;
  detail::var_key key_;
};

}  // namespace baton
