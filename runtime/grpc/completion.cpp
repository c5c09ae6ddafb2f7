// SPDX-License-Identifier: BSL-1.0
// Who takes events off a completion queue: a routing thread that hands them to loops, or a
// loop's own thread, parked in the queue (docs/design/grpc.md).
#include <baton/grpc/detail/completion.hpp>

#include <grpcpp/alarm.h>
#include <grpcpp/completion_queue.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace baton::grpc::detail {

namespace {

// The loop_queue attached to the loop this thread runs, and whether this thread is inside its
// take() now.
thread_local loop_queue* attached_here = nullptr;
thread_local bool polling_here = false;

void acquire_tag([[maybe_unused]] void* tag) noexcept {
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(tag);  // the other half of completion::tag()
#endif
}

}  // namespace

gpr_timespec monotonic_deadline(std::chrono::steady_clock::time_point t) noexcept {
  if (t == std::chrono::steady_clock::time_point::min()) return gpr_inf_past(GPR_CLOCK_MONOTONIC);
  if (t == std::chrono::steady_clock::time_point::max()) {
    return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  }
  const auto left =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t - std::chrono::steady_clock::now());
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_nanos(std::max<std::int64_t>(left.count(), 0), GPR_TIMESPAN));
}

bool on_polling_thread() noexcept { return polling_here; }

::grpc::CompletionQueue& queue_for_calls(::grpc::CompletionQueue& routed) noexcept {
  loop_queue* q = attached_here;
  return q != nullptr && q->takes_calls() ? q->queue() : routed;
}

::grpc::CompletionQueue& queue_for_stream(::grpc::CompletionQueue& routed,
                                          std::shared_ptr<queue_lease>& lease) {
  loop_queue* q = attached_here;
  if (q != nullptr && q->takes_calls()) {
    lease = q->lease();
    return q->queue();
  }
  lease.reset();
  return routed;
}

// ---------------------------------------------------------------------------------------------
// loop_queue

loop_queue::loop_queue(::grpc::CompletionQueue& cq, const std::atomic<bool>& takes_calls)
    : cq_(cq), takes_calls_(takes_calls), alarm_(std::make_unique<::grpc::Alarm>()) {}

loop_queue::~loop_queue() = default;

bool loop_queue::attach() {
  if (!baton::detail::set_park_hook(this)) return false;
  attached_here = this;
  lease_->thread = std::this_thread::get_id();
  return true;
}

void loop_queue::detach() noexcept {
  (void)baton::detail::set_park_hook(nullptr);  // under the gate lock: no wake() after this
  attached_here = nullptr;
  // relaxed: the streams that read it run on this thread; one used from another thread reads
  // it only to refuse that use.
  lease_->open.store(false, std::memory_order_relaxed);
}

void loop_queue::take(gpr_timespec deadline) noexcept {
  polling_here = true;
  void* tag = nullptr;
  bool ok = false;
  // SHUTDOWN cannot come while attached: the queue is shut down after detach().
  while (cq_.AsyncNext(&tag, &ok, deadline) == ::grpc::CompletionQueue::GOT_EVENT) {
    acquire_tag(tag);
    static_cast<completion*>(tag)->complete(ok);
    deadline = gpr_inf_past(GPR_CLOCK_MONOTONIC);  // then only what is ready already
  }
  polling_here = false;
}

void loop_queue::poll() noexcept { take(gpr_inf_past(GPR_CLOCK_MONOTONIC)); }

void loop_queue::prepare() noexcept {
  int s = running;
  // acq_rel: a wake() that reads parking after this sets the alarm (a woken state stays: its
  // alarm is pending and ends the next park).
  state_.compare_exchange_strong(s, parking, std::memory_order_acq_rel);
}

void loop_queue::park(time_point deadline) noexcept {
  take(monotonic_deadline(deadline));
  int s = parking;
  state_.compare_exchange_strong(s, running, std::memory_order_acq_rel);  // woken stays
}

void loop_queue::wake() noexcept {
  int s = parking;
  // acq_rel: pairs with prepare(); under the loop's gate lock, so one wake() at a time.
  if (state_.compare_exchange_strong(s, woken, std::memory_order_acq_rel)) {
    alarm_->Set(&cq_, gpr_inf_past(GPR_CLOCK_MONOTONIC), wake_event_.tag());
  }
}

void loop_queue::wake_event::complete(bool) noexcept {
  queue.state_.store(running, std::memory_order_release);  // the next wake() may set it again
}

void take_remaining(::grpc::CompletionQueue& cq) noexcept {
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
    acquire_tag(tag);
    static_cast<completion*>(tag)->complete(ok);
  }
}

// ---------------------------------------------------------------------------------------------
// cq_thread

cq_thread::cq_thread(::grpc::CompletionQueue& cq, std::function<void()> drained)
    : thread_([&cq, drained = std::move(drained)] {
        void* tag = nullptr;
        bool ok = false;
        while (cq.Next(&tag, &ok)) {
          acquire_tag(tag);
          static_cast<completion*>(tag)->complete(ok);
        }
        if (drained) drained();
      }) {}

cq_thread::~cq_thread() { join(); }

void cq_thread::join() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace baton::grpc::detail
