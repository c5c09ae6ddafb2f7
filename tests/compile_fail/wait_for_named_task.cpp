// SPDX-License-Identifier: BSL-1.0
// wait_for(t, d) of a named task: wait_for takes the task over, so it is passed as an rvalue.
// expect: baton: a task is move-only and runs once: pass a named task as std::move(t)
#include <baton/baton.hpp>

#include <chrono>

baton::task<int> answer() { co_return 42; }

baton::task<> caller() {
  auto t = answer();
  int v = co_await baton::wait_for(t, std::chrono::seconds(1));
  (void)v;
}
