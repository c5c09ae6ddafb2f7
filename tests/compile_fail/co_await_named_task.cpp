// SPDX-License-Identifier: BSL-1.0
// co_await on a named task (an lvalue): a task runs once, so it is awaited as an rvalue.
// expect: baton: co_await on a named task: write co_await std::move(t)
#include <baton/baton.hpp>

baton::task<int> answer() { co_return 42; }

baton::task<int> caller() {
  auto t = answer();
  co_return co_await t;
}
