// SPDX-License-Identifier: BSL-1.0
// The exceptions baton throws, all in one place.
#pragma once

// Contract:
//   lookup_error     a context_var::get() found no value and no default.
//   context_error    misuse of the context API: a token reset twice, reset through another var
//                    or in another context, or run() of a context that is already entered.
//   cancelled_error  thrown at the suspension point of a cancelled task, and by awaiting it.
//   timeout_error    wait_for() ran out of time (the inner work has been cancelled).
//   runtime_error    the runtime used where it cannot work, e.g. spawn() outside a running loop.
// Every message names what went wrong (the var, the task, the operation).
// Thread-safety: these are plain exception values.

#include <exception>
#include <stdexcept>
#include <string>

namespace baton {

/// get() of a context_var with no value in the current context and no default.
struct lookup_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Misuse of contexts or tokens; thrown before any state changes.
struct context_error : std::logic_error {
  using std::logic_error::logic_error;
};

/// Delivered at the suspension point of a cancelled task, and by awaiting a cancelled task.
struct cancelled_error : std::runtime_error {
  cancelled_error() : std::runtime_error("baton: the task was cancelled") {}
  using std::runtime_error::runtime_error;
};

/// wait_for() ran out of time; the awaited work was cancelled first.
struct timeout_error : std::runtime_error {
  timeout_error() : std::runtime_error("baton: the operation timed out") {}
  using std::runtime_error::runtime_error;
};

/// The runtime used where it cannot work (no running loop, a loop run twice, ...).
struct runtime_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A task failure nobody retrieved, as run_options::exception_handler receives it.
struct unhandled_failure {
  std::string task_name;
  std::exception_ptr error;
};

}  // namespace baton
