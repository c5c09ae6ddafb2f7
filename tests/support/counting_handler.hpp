// SPDX-License-Identifier: BSL-1.0
// counting_handler: run_options whose exception_handler counts the failures nobody retrieved
// and keeps their task names, for the tests of what reaches (or must not reach) a loop's handler.
#pragma once

#include <baton/errors.hpp>
#include <baton/run.hpp>

#include <string>
#include <vector>

namespace baton_test {

/// baton::run(main(), failures.options()); then check failures.reports (or task_names).
/// The installed handler refers to this object: it stays where it is (no copies, no moves)
/// and outlives the run() it is given to. Meant for a loop of one thread (the default).
struct counting_handler {
  int reports = 0;                      // calls of the handler
  std::vector<std::string> task_names;  // the reported tasks' names, in the order reported

  counting_handler() = default;
  counting_handler(const counting_handler&) = delete;
  counting_handler& operator=(const counting_handler&) = delete;

  /// Default run_options, but for an exception_handler that records each report here.
  baton::run_options options() {
    baton::run_options opts;
    opts.exception_handler = [this](const baton::unhandled_failure& f) {
      ++reports;
      task_names.push_back(f.task_name);
    };
    return opts;
  }
};

}  // namespace baton_test
