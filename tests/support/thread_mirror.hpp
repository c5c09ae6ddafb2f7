// SPDX-License-Identifier: BSL-1.0
// thread_mirror: a var's mirror into a thread_local, the way a legacy library keeps its state.
#pragma once

#include <baton/context_var.hpp>

#include <optional>

namespace baton_test {

/// What each thread's mirror of one var was last told, and how many times it was called.
/// Tag (a type local to the test) gives every test thread_locals of its own.
template <class Tag, class T>
struct thread_mirror {
  inline static thread_local std::optional<T> seen;
  inline static thread_local int calls = 0;

  static void install(baton::context_var<T>& var) {
    var.on_switch([](const T* p) {
      ++calls;
      seen = p != nullptr ? std::optional<T>(*p) : std::nullopt;
    });
  }
};

}  // namespace baton_test
