// SPDX-License-Identifier: BSL-1.0
// loop_poller: the running loop's thread as gRPC's poller for the calls its tasks make.
#pragma once

// Contract:
//   loop_poller p;   in a task of a loop of one thread: gives the loop a completion queue of
//                    its own, which the loop's thread polls itself (as server_options::
//                    poll_on_loop does with a server's queue, server.hpp). Every call the loop's
//                    tasks start on any channel then goes through it, so its completions cross
//                    no thread. Where the loop cannot (several threads, or it already polls a
//                    server's queue or another poller's), p does nothing: active() is false and
//                    calls keep their channel's queue.
//   p.active()       whether the loop polls p's queue.
//   ~loop_poller()   on the same loop thread: the loop waits in Asio again. No call started
//                    through p should still be pending: the destructor takes the queue's last
//                    events itself, so it blocks the loop until such a call ends. A stream
//                    opened through p and still open is cancelled at its next operation,
//                    which fails with UNAVAILABLE (channel.hpp).
//   While p is active the loop waits in gRPC, not in Asio: baton's timers, to_thread,
//   loop_handle and tasks woken from other threads are as prompt as ever, but what only Asio's
//   wait notices (sockets, signal_set, plain Asio timers) may be seen up to 5 ms late.
//   Context:      none of its own; each call carries its caller's (channel.hpp).
//   Exceptions:   baton::runtime_error when made outside a loop.
//   Cancellation: nothing to cancel; calls made through p are cancelled as channel.hpp says.
//   Thread-safety: make and destroy it on the loop's thread (it is not movable); active() from
//                 any thread.
//
// Example (a client-only loop, e.g. a load generator or a gRPC fan-out worker):
//   baton::grpc::loop_poller poller;                       // first, before the loop's calls
//   baton::grpc::channel users(::grpc::CreateChannel(...));
//   auto reply = co_await users.call<lookup_reply>("/dir.Users/Lookup", request);

#include <memory>

namespace baton::grpc {

class loop_poller {
 public:
  loop_poller();
  loop_poller(const loop_poller&) = delete;
  loop_poller& operator=(const loop_poller&) = delete;
  ~loop_poller();

  bool active() const noexcept { return active_; }

 private:
  struct state;
  std::unique_ptr<state> state_;
  bool active_ = false;  // written once, by the constructor
};

}  // namespace baton::grpc
