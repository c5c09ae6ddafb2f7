// SPDX-License-Identifier: BSL-1.0
// run(main_task) with the coroutine function instead of a task made by calling it.
// expect: baton: run(f) needs a task: call the coroutine function, run(f())
#include <baton/baton.hpp>

baton::task<int> main_task() { co_return 0; }

int main() { return baton::run(main_task); }
