// SPDX-License-Identifier: BSL-1.0
// spawn(t) of a named task: spawn takes the task over, so it is passed as an rvalue.
// expect: baton: a task is move-only and runs once: pass a named task as std::move(t)
#include <baton/baton.hpp>

baton::task<> work() { co_return; }

baton::task<> caller() {
  auto t = work();
  auto h = baton::spawn(t);
  co_await h;
}
