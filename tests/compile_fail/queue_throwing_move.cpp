// SPDX-License-Identifier: BSL-1.0
// A queue of a type whose move may throw: items move under the queue's mutex.
// expect: baton: queue<T> needs a nothrow-move-constructible T: use queue<std::unique_ptr<T>>
#include <baton/baton.hpp>

struct heavy {
  heavy() = default;
  heavy(heavy&&) {}  // not noexcept
};

baton::queue<heavy> work(8);
