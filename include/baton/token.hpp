// SPDX-License-Identifier: BSL-1.0
// token<T>: what context_var<T>::set() returns, to undo that set with reset().
#pragma once

// Contract: a token is a cheap copyable handle to shared state (copies are the same token).
// It remembers the var, the context it was made in and the var's previous value.
// var<T>::reset(token) restores that previous value (or its absence) exactly, once; a second
// reset, a reset through another var, or in another context throws context_error before
// changing anything. Thread-safety: a token may be copied and destroyed on any thread; reset
// is only meaningful on the thread that has the token's context entered.
// Lifetime: var() refers to the var that made the token; do not use it after the var is gone.

#include <baton/detail/context_map.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <utility>

namespace baton {

template <class T>
class context_var;

namespace detail {

/// The shared state of a token (non-template: reset works on slots, not on T).
struct token_state {
  std::atomic<std::uint32_t> refs{1};
  std::atomic<bool> used{false};
  var_key key;
  const void* var;
  std::uint64_t cell_id;
  std::uint64_t version;  // the version of the root the set made (map_node::version)
  map_node* old_root;     // retained: the map before the set; moved back into the
                          // context by a reset that finds nothing changed since
  slot old_entry;         // the var's entry before the set (box retained), if any
  bool had_old;
};

/// A new reference from one the caller holds (relaxed: nothing is published with it; the
/// drop that frees the state orders the frees, see drop_ref()).
inline void retain(token_state* t) noexcept { t->refs.fetch_add(1, std::memory_order_relaxed); }
void release(token_state* t) noexcept;
/// Applies entry (taking over its box) to the current context; returns the new token's state.
token_state* set_entry(const slot& entry, const void* var);
/// Sets entries[0, n) (distinct vars) in the current context as one change and makes no token:
/// for the runtime's own fill of a context nobody resets (a gRPC call's, before its handler
/// runs). One new root, one mirror sync. Takes over every entry's box, also when it throws.
void set_untracked(const slot* entries, std::size_t n);
/// Resets the current context's value of key to what it was before t's set. Checks first.
void reset_entry(token_state* t, var_key key, const void* var, const std::string& name);

}  // namespace detail

template <class T>
class token {
 public:
  /// The var whose set() made this token.
  const context_var<T>& var() const noexcept {
    return *static_cast<const context_var<T>*>(s_->var);
  }

  /// The var's value before the set; nullopt when it had none (Python's Token.MISSING).
  std::optional<T> old_value() const {
    if (s_->had_old) return detail::load<T>(s_->old_entry);
    return std::nullopt;
  }

  /// True once reset() has used this token.
  // Relaxed: written by reset() in the context the token belongs to, read there too.
  bool used() const noexcept { return s_->used.load(std::memory_order_relaxed); }

 private:
  friend class context_var<T>;
  explicit token(detail::token_state* s) noexcept : s_(s) {}
  detail::counted_ref<detail::token_state, &detail::retain, &detail::release> s_;
};

}  // namespace baton
