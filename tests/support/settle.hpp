// SPDX-License-Identifier: BSL-1.0
// settle(): yield to the loop a few times, so spawned tasks reach their next suspension point.
#pragma once

#include <baton/sleep.hpp>
#include <baton/task.hpp>

#include <chrono>

namespace baton_test {

/// sleep(0) puts the caller behind every ready task; a few rounds let chains of wake-ups
/// (a release waking a waiter that releases in turn) run out on a one-thread loop.
inline baton::task<> settle(int rounds = 8) {
  for (int i = 0; i < rounds; ++i) co_await baton::sleep(std::chrono::milliseconds(0));
}

}  // namespace baton_test
