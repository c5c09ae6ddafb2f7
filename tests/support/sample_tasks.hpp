// SPDX-License-Identifier: BSL-1.0
// Small tasks (and a var) the combinator tests (wait_for, gather, task_group, shield) build on.
#pragma once

#include <baton/context_var.hpp>
#include <baton/event.hpp>
#include <baton/sleep.hpp>
#include <baton/task.hpp>

#include <chrono>
#include <stdexcept>

namespace baton_test {

/// A var the tests set and read to see whose context a task runs in.
inline baton::context_var<int> marker("marker");

/// Sleeps for an hour: ends only by cancellation.
inline baton::task<> sleep_forever() { co_await baton::sleep(std::chrono::hours(1)); }

/// v after a sleep of d.
inline baton::task<int> value_after(int v, std::chrono::milliseconds d) {
  co_await baton::sleep(d);
  co_return v;
}

/// v once the test sets `go`: the test decides the order, not a timer.
inline baton::task<int> value_when(int v, baton::event& go) {
  co_await go.wait();
  co_return v;
}

/// Fails with std::runtime_error("failed") after a sleep of d.
inline baton::task<int> fail_after(std::chrono::milliseconds d) {
  co_await baton::sleep(d);
  throw std::runtime_error("failed");
}

}  // namespace baton_test
