// SPDX-License-Identifier: BSL-1.0
// How a gRPC completion queue meets baton's loop: one awaitable per gRPC operation.
#pragma once

// Each operation baton starts on a completion queue carries a `completion` as its tag. Who
// takes events off the queue and calls complete(ok):
//   - a routing thread (cq_thread): complete(ok) posts the awaiting task's resumption to the
//     task's loop; that thread never runs user code;
//   - or the loop's own thread (loop_queue, a park hook: server_options::poll_on_loop, or a
//     loop_poller): the loop thread is gRPC's poller, and complete(ok) schedules the task at
//     once.
// docs/design/grpc.md says why and what each costs.
//
//   task ──co_await grpc_op(start, cancel)──▶ grpc_awaiter (in the task's frame; it is the tag)
//        start(tag) begins the gRPC operation ──▶ completion queue
//   cq_thread: Next(&tag, &ok) ──▶ tag->complete(ok) ──schedule──▶ loop ──▶ task resumes with ok
//   loop_queue: the loop's park: AsyncNext(&tag, &ok, next timer) ──▶ complete(ok) ──▶ task
//   task.cancel() ──▶ the task's hook ──▶ cancel() (TryCancel: the operation ends, ok=false)

#include <baton/detail/cancel.hpp>
#include <baton/detail/park_hook.hpp>
#include <baton/detail/promise.hpp>

#include <grpc/support/time.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <functional>
#include <memory>
#include <thread>
#include <utility>

namespace grpc {
class Alarm;
class CompletionQueue;
}  // namespace grpc

#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace baton::grpc::detail {

/// The tag of every operation baton starts: the queue's thread calls complete(ok) once.
class completion {
 public:
  virtual void complete(bool ok) noexcept = 0;

  /// What to hand gRPC as the tag. gRPC's queue orders an operation's start before its
  /// completion, but ThreadSanitizer cannot see inside Debian's uninstrumented gRPC: under TSan
  /// the hand-off is annotated here and in cq_thread (nothing otherwise).
  void* tag() noexcept {
#if defined(__SANITIZE_THREAD__)
    __tsan_release(this);
#endif
    return this;
  }

 protected:
  ~completion() = default;
};

/// A steady_clock time point as a deadline on gRPC's monotonic clock, which is not
/// std::chrono's: the time left, added to gRPC's now. min() is already past, max() is never.
gpr_timespec monotonic_deadline(std::chrono::steady_clock::time_point t) noexcept;

/// True while this thread takes events off the loop_queue of the loop it runs: a completion
/// then schedules its task at once (this thread is the task's loop) instead of posting.
bool on_polling_thread() noexcept;

/// The queue a call started on this thread goes to: the running loop's loop_queue while it
/// takes calls, else `routed` (a channel's own queue and routing thread).
::grpc::CompletionQueue& queue_for_calls(::grpc::CompletionQueue& routed) noexcept;

/// What a streaming call keeps of the loop's queue it started on, for its later operations: a
/// loop_queue closes its lease on detach(), before the queue is shut down, and gRPC aborts the
/// process on an operation started on a queue that was shut down. So a call checks the lease
/// before each operation; only the loop's thread may start them (it is the one that closes it).
struct queue_lease {
  std::atomic<bool> open{true};
  std::thread::id thread;  // the loop's
};

/// queue_for_calls() for a call that starts operations later too: `lease` is set to the
/// loop_queue's lease when the queue is a loop's, to null when it is `routed`.
::grpc::CompletionQueue& queue_for_stream(::grpc::CompletionQueue& routed,
                                          std::shared_ptr<queue_lease>& lease);

/// Takes every event left on a queue that was shut down, completing each, until it is empty.
void take_remaining(::grpc::CompletionQueue& cq) noexcept;

/// Makes a loop of one thread the poller of a completion queue: a park hook
/// (baton/detail/park_hook.hpp) whose park is the queue's AsyncNext with the loop's next timer
/// as the deadline, woken for work from other threads by a grpc::Alarm set on the queue.
/// attach() and detach() on the loop's thread; the queue is shut down only after detach(),
/// and its last events (the alarm's among them) are taken (take_remaining(), or a cq_thread
/// when calls may still be pending) before this object dies.
class loop_queue final : public baton::detail::park_hook {
 public:
  /// takes_calls: while true, calls started on the loop thread use this queue (queue_for_calls).
  loop_queue(::grpc::CompletionQueue& cq, const std::atomic<bool>& takes_calls);
  loop_queue(const loop_queue&) = delete;
  loop_queue& operator=(const loop_queue&) = delete;
  ~loop_queue();

  /// False (and nothing changes) when the running loop cannot take a park hook: a loop of
  /// several threads, or one with a hook already.
  bool attach();
  void detach() noexcept;

  void poll() noexcept override;
  void prepare() noexcept override;
  void park(time_point deadline) noexcept override;
  void wake() noexcept override;

  ::grpc::CompletionQueue& queue() noexcept { return cq_; }
  const std::shared_ptr<queue_lease>& lease() const noexcept { return lease_; }
  bool takes_calls() const noexcept {
    return takes_calls_.load(std::memory_order_relaxed);  // a hint: see server_state::accepting
  }

 private:
  // The wake-up protocol (no lost wake-up): prepare() moves running -> parking; a wake() that
  // finds parking moves it to woken and sets the alarm, whose event moves woken -> running;
  // park() moves parking -> running when it returns. So a wake() that finds running or woken
  // needs no alarm: the loop looks for work before it parks, or the alarm is on its way. At
  // most one alarm is pending, as grpc::Alarm requires.
  enum state : int { running, parking, woken };
  struct wake_event final : completion {
    explicit wake_event(loop_queue& q) : queue(q) {}
    void complete(bool) noexcept override;
    loop_queue& queue;
  };
  void take(gpr_timespec deadline) noexcept;  // the ready events, the first by `deadline`

  ::grpc::CompletionQueue& cq_;
  const std::atomic<bool>& takes_calls_;
  std::shared_ptr<queue_lease> lease_ = std::make_shared<queue_lease>();  // closed by detach()
  std::unique_ptr<::grpc::Alarm> alarm_;
  wake_event wake_event_{*this};
  std::atomic<int> state_{running};
};

/// The thread that drains one completion queue, calling complete(ok) on each tag, until the
/// queue is shut down and empty; then calls `drained` (when given).
class cq_thread {
 public:
  explicit cq_thread(::grpc::CompletionQueue& cq, std::function<void()> drained = {});
  cq_thread(const cq_thread&) = delete;
  cq_thread& operator=(const cq_thread&) = delete;
  /// Joins: the queue must have been shut down (or be shut down by another thread).
  ~cq_thread();
  void join();

 private:
  std::thread thread_;
};

/// The awaiter of one gRPC operation, and its tag: it lives in the awaiting coroutine's frame
/// until the queue reports the operation, so nothing is allocated per operation. The task is
/// suspended under its cancel lock with this as its hook (detail/cancel.hpp): cancelling the
/// task calls cancel() while the operation is pending; complete(ok) takes the hook down under
/// the same lock, so a cancellation arriving later never touches a finished operation.
template <class Start, class Cancel>
class [[nodiscard]] grpc_awaiter final : public completion {
 public:
  grpc_awaiter(Start start, Cancel cancel, bool* ok_out)
      : start_(std::move(start)), cancel_(std::move(cancel)), ok_out_(ok_out) {}
  grpc_awaiter(const grpc_awaiter&) = delete;
  grpc_awaiter& operator=(const grpc_awaiter&) = delete;

  bool await_ready() const noexcept { return false; }

  template <baton::detail::baton_promise P>
  bool await_suspend(std::coroutine_handle<P> h) {
    task_ = baton::detail::running_task;
    return baton::detail::arm(task_, h, kind, this, [this] {
      start_(tag());
      return true;
    });
  }

  /// The operation's `ok`; cancelled_error instead when the task was cancelled meanwhile.
  bool await_resume() {
    baton::detail::disarm(task_);
    return ok_;
  }

  void complete(bool ok) noexcept override {
    ok_ = ok;
    if (ok_out_) *ok_out_ = ok;  // published to the task by schedule() below
    {
      baton::detail::cancel_guard g(task_);  // no cancel() may reach this operation from now
      task_->hook = {};
    }
    // From any thread: from another one it goes through the loop's injection queue, which also
    // wakes a loop parked in a park hook (an Asio post would not).
    baton::detail::schedule(task_);
  }

 private:
  static void on_cancel(baton::detail::task_base*, void* self) noexcept {
    static_cast<grpc_awaiter*>(self)->cancel_();
  }
  static constexpr baton::detail::await_kind kind{"grpc operation", &on_cancel};

  Start start_;
  Cancel cancel_;
  bool* ok_out_;
  baton::detail::task_base* task_ = nullptr;
  bool ok_ = false;
};

/// co_await grpc_op(start, cancel) -> the operation's `ok`. start(tag) begins the operation
/// (called only if the task is not already cancelled); cancel() is called, from the thread
/// that cancels the task, while the operation is pending, and must make it end soon (TryCancel).
/// ok_out, when given, also receives `ok`: a task resumed with cancelled_error (which wins over
/// the result) can still tell whether the operation succeeded.
template <class Start, class Cancel>
grpc_awaiter<Start, Cancel> grpc_op(Start start, Cancel cancel, bool* ok_out = nullptr) {
  return {std::move(start), std::move(cancel), ok_out};
}

}  // namespace baton::grpc::detail
