// SPDX-License-Identifier: BSL-1.0
// Runs a task body on a fresh loop for a test case: baton_test::run_task([]() -> task<> {...}).
#pragma once

#include <baton/run.hpp>
#include <baton/task.hpp>

#include <utility>

namespace baton_test {

template <class F>
auto run_task(F&& body, baton::run_options opts = {}) {
  return baton::run(std::forward<F>(body)(), std::move(opts));
}

}  // namespace baton_test
