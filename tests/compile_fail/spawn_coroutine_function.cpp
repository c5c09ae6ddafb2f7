// SPDX-License-Identifier: BSL-1.0
// spawn(work) with the coroutine function instead of a task made by calling it.
// expect: baton: spawn(f) needs a task: call the coroutine function, spawn(f())
#include <baton/baton.hpp>

baton::task<> work() { co_return; }

baton::task<> caller() {
  auto h = baton::spawn(work);
  co_await h;
}
