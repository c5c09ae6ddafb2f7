// SPDX-License-Identifier: BSL-1.0
// The populated context of the task benchmarks (runtime_bench, memory_bench): 16 vars, 4 of
// them strings (boxed values), what a request handler might carry; all of the default flow, or
// mixed (every third var inherit::tasks, the next inherit::never).
#pragma once

#include <baton/context_var.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace baton_bench {

struct sixteen_vars {
  std::vector<std::unique_ptr<baton::context_var<int>>> ints;
  std::vector<std::unique_ptr<baton::context_var<std::string>>> strings;

  explicit sixteen_vars(bool mixed_flows = false) {
    auto flow = [mixed_flows](int i) {
      if (!mixed_flows || i % 3 == 0) return baton::var_options{};
      return baton::var_options{i % 3 == 1 ? baton::inherit::tasks : baton::inherit::never};
    };
    for (int i = 0; i < 12; ++i) {
      ints.push_back(std::make_unique<baton::context_var<int>>("int" + std::to_string(i), flow(i)));
    }
    for (int i = 0; i < 4; ++i) {
      strings.push_back(std::make_unique<baton::context_var<std::string>>(
          "string" + std::to_string(i), flow(12 + i)));
    }
  }

  /// Sets every var in the current context.
  void set_all() {
    for (std::size_t i = 0; i < ints.size(); ++i) (void)ints[i]->set(static_cast<int>(i));
    for (std::size_t i = 0; i < strings.size(); ++i) {
      (void)strings[i]->set("a value longer than the small-string buffer #" + std::to_string(i));
    }
  }
};

}  // namespace baton_bench
