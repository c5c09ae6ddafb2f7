// SPDX-License-Identifier: BSL-1.0
// How a gRPC completion queue meets baton's loop: one awaitable per gRPC operation.
#pragma once

// Each operation baton starts on a completion queue carries a `completion` as its tag. The
// queue's own thread (cq_thread) takes events off the queue and calls complete(ok), which posts
// the awaiting task's resumption to the task's loop: that thread never runs user code.
// docs/design/grpc.md says why and what it costs.
//
//   task ──co_await grpc_op(start, cancel)──▶ use_task operation
//        start(tag) begins the gRPC operation ──▶ completion queue
//   cq_thread: Next(&tag, &ok) ──▶ tag->complete(ok) ──post──▶ loop ──▶ task resumes with ok
//   task.cancel() ──▶ cancellation slot ──▶ cancel() (TryCancel: the operation ends, ok=false)

#include <baton/use_task.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>

#include <thread>
#include <utility>

namespace grpc {
class CompletionQueue;
}

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

/// The thread that drains one completion queue, calling complete(ok) on each tag, until the
/// queue is shut down and empty.
class cq_thread {
 public:
  explicit cq_thread(::grpc::CompletionQueue& cq);
  cq_thread(const cq_thread&) = delete;
  cq_thread& operator=(const cq_thread&) = delete;
  /// Joins: the queue must have been shut down (or be shut down by another thread).
  ~cq_thread();
  void join();

 private:
  std::thread thread_;
};

/// Owns the completion handler of one awaiting operation until the queue reports it.
template <class Handler>
class handler_completion final : public completion {
 public:
  handler_completion(Handler h, bool* ok_out) : handler_(std::move(h)), ok_out_(ok_out) {}

  void complete(bool ok) noexcept override {
    Handler h = std::move(handler_);
    if (ok_out_) *ok_out_ = ok;  // published to the task by the post below
    delete this;
    // The handler's executor is the awaiting task's loop (blocking.never): it runs there.
    boost::asio::post(boost::asio::append(std::move(h), ok));
  }

 private:
  Handler handler_;
  bool* ok_out_;
};

/// co_await grpc_op(start, cancel) -> the operation's `ok`. start(tag) begins the operation
/// (called only if the task is not already cancelled); cancel() is called, from the thread
/// that cancels the task, while the operation is pending, and must make it end soon (TryCancel).
/// ok_out, when given, also receives `ok`: a task resumed with cancelled_error (which wins over
/// the result) can still tell whether the operation succeeded.
template <class Start, class Cancel>
auto grpc_op(Start start, Cancel cancel, bool* ok_out = nullptr) {
  return boost::asio::async_initiate<const use_task_t&, void(bool)>(
      [ok_out](auto handler, Start begin, Cancel stop) {
        auto slot = boost::asio::get_associated_cancellation_slot(handler);
        if (slot.is_connected()) {
          slot.assign([stop](boost::asio::cancellation_type) mutable { stop(); });
        }
        completion* c = new handler_completion<decltype(handler)>(std::move(handler), ok_out);
        begin(c->tag());
      },
      use_task, std::move(start), std::move(cancel));
}

}  // namespace baton::grpc::detail
