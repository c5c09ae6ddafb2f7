// SPDX-License-Identifier: BSL-1.0
// park_hook: another library's wait in place of Asio's for a loop of one thread.
#pragma once

// Contract (for libraries built on baton, such as baton_grpc; not for applications):
//   A loop of one thread waits in Asio's io_context when no task is ready. set_park_hook(h),
//   called on that loop's thread, makes it wait in h instead: h's park() blocks until one of
//   h's own events, the deadline the loop gives it (its next timer, and never more than 5 ms
//   away), or a wake() from another thread. The loop then still runs Asio's handlers, but
//   never blocks in Asio, so what only Asio's wait notices (sockets, signal_set, plain Asio
//   timers, posts made straight to the io_context from other threads) is seen at the loop's
//   next poll of Asio (before a park, at most every 50 us unless something was posted to Asio
//   through baton or a timer is due): up to 5 ms late on an idle loop. A hook suits loops
//   whose waits are the hook's events, baton's timers (sleep, wait_for), and wake-ups from
//   other threads through baton (tasks scheduled from outside, to_thread, loop_handle), which
//   are all prompt.
//   The loop calls, on its own thread:
//     poll()          while tasks are ready, when it lets Asio run (at most every 50 us): take
//                     the hook's ready events without blocking;
//     prepare()       when none is ready, before it looks for work one last time: from here a
//                     wake() must make the next park() return at once;
//     park(deadline)  then: wait until an event, the deadline, or a wake() since prepare(), and
//                     take the ready events. A deadline in the past (time_point::min() when the
//                     last look found work) only polls.
//   And, from any thread, wake(): called under the loop's gate lock (so never concurrently with
//   another wake(), with set_park_hook(), or after the hook is removed) whenever another thread
//   queues work for the loop.
//   The hook's events run code on the loop thread between tasks, in the loop's empty context,
//   as plain Asio handlers do: they may schedule and spawn tasks.
//   set_park_hook(nullptr) removes it. set_park_hook(h) returns false, and installs nothing,
//   outside a loop, on a loop of several threads (runtime/scheduler.cpp has no hook), or when
//   the loop has another hook.
//   Thread-safety: as above. Cost to loops without a hook: one predictable branch when idle.
//
// Example (baton_grpc's loop_queue, runtime/grpc/loop_queue.cpp):
//   if (baton::detail::set_park_hook(&queue)) { /* the loop thread is gRPC's poller */ }

#include <chrono>

namespace baton::detail {

class park_hook {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  virtual void poll() noexcept = 0;
  virtual void prepare() noexcept = 0;
  virtual void park(time_point deadline) noexcept = 0;
  virtual void wake() noexcept = 0;

 protected:
  ~park_hook() = default;
};

/// Installs h as the running loop's wait (nullptr: Asio's again); see above for when it
/// refuses (false).
bool set_park_hook(park_hook* h);

}  // namespace baton::detail
