// SPDX-License-Identifier: BSL-1.0
// flow_vars: one var of each flow (inherit::always / tasks / never), to see what a hand-off keeps.
#pragma once

#include <baton/context_var.hpp>
#include <baton/task.hpp>

#include <string>

namespace baton_test {

struct flow_vars {
  baton::context_var<std::string> always{"always"};
  baton::context_var<std::string> tasks{"tasks", baton::var_options{baton::inherit::tasks}};
  baton::context_var<std::string> never{"never", baton::var_options{baton::inherit::never}};

  /// Sets all three in the current context ("a", "t", "n").
  void set_all() {
    (void)always.set("a");
    (void)tasks.set("t");
    (void)never.set("n");
  }
  /// What the current context holds of the three, "-" for none: "a t n" when it has all.
  std::string seen() const { return always.get("-") + " " + tasks.get("-") + " " + never.get("-"); }
};

/// A task that reports what its context holds of vars.
inline baton::task<std::string> seen_by_task(const flow_vars& vars) { co_return vars.seen(); }

/// What each kind of hand-off carries of flow_vars::set_all().
inline const std::string everything = "a t n";
inline const std::string to_a_task = "a t -";
inline const std::string to_a_thread = "a - -";

}  // namespace baton_test
