// SPDX-License-Identifier: BSL-1.0
// loop_poller: a completion queue of the loop's own, polled by the loop's thread.
#include <baton/grpc/loop_poller.hpp>

#include <baton/executor.hpp>
#include <baton/grpc/detail/completion.hpp>

#include <grpcpp/completion_queue.h>

#include <atomic>

namespace baton::grpc {

struct loop_poller::state {
  ::grpc::CompletionQueue cq;           // declared first: destroyed after the queue's alarm
  std::atomic<bool> takes_calls{true};  // for the whole life of the poller
  detail::loop_queue queue{cq, takes_calls};
};

loop_poller::loop_poller() {
  (void)current_executor();  // outside a loop: its runtime_error
  state_ = std::make_unique<state>();
  active_ = state_->queue.attach();
}

loop_poller::~loop_poller() {
  if (active_) state_->queue.detach();
  state_->cq.Shutdown();
  detail::take_remaining(state_->cq);  // the pending wake-up alarm, calls still in flight
}

}  // namespace baton::grpc
