// SPDX-License-Identifier: BSL-1.0
// gather(t1, t2) of named tasks: gather spawns them, taking them over, so they are rvalues.
// expect: baton: a task is move-only and runs once: pass a named task as std::move(t)
#include <baton/baton.hpp>

baton::task<int> answer() { co_return 42; }

baton::task<> caller() {
  auto a = answer();
  auto b = answer();
  auto [x, y] = co_await baton::gather(a, b);
  (void)x;
  (void)y;
}
