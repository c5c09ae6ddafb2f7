// SPDX-License-Identifier: BSL-1.0
// A value type that counts its live instances, to prove values are released.
#pragma once

#include <atomic>

namespace baton_test {

struct counted {
  static inline std::atomic<int> live{0};
  int value = 0;
  explicit counted(int v = 0) : value(v) { ++live; }
  counted(const counted& o) : value(o.value) { ++live; }
  counted& operator=(const counted&) = default;
  ~counted() { --live; }
};

}  // namespace baton_test
