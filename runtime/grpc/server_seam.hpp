// SPDX-License-Identifier: BSL-1.0
// server_seam: a test's view of the steps a server's calls take, so that the test can order its
// own actions against them. Private to baton and its tests (not installed).
#pragma once

// Contract:
//   server_seam::observe_call_steps(s, observer), before s.start() (runtime_error after it):
//   observer(step) runs on the thread that took the step, for each of s's calls:
//     start_posted  the call's task start has been handed to the serving loop (under
//                   poll_on_loop on the loop's thread, where it has run already);
//     done_seen     gRPC's "done" for the call has been handled: a running task has been
//                   cancelled if the call was, and a task that starts later will be.
//   It runs on gRPC's thread and must not block. Unset, a step costs a null check.
// Why: one path of a call cannot be reached in order from outside (a call cancelled while its
// task's start is on its way to the loop); a test holds the loop and waits for these steps.

#include <baton/grpc/server.hpp>

#include <functional>

namespace baton::grpc::detail {

enum class call_step { start_posted, done_seen };

using call_step_observer = std::function<void(call_step)>;

struct server_seam {
  static void observe_call_steps(server& s, call_step_observer observer);
};

}  // namespace baton::grpc::detail
