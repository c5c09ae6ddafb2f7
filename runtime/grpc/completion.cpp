// SPDX-License-Identifier: BSL-1.0
// The completion queue's thread: it only takes events off the queue and hands them to loops.
#include <baton/grpc/detail/completion.hpp>

#include <grpcpp/completion_queue.h>

namespace baton::grpc::detail {

cq_thread::cq_thread(::grpc::CompletionQueue& cq)
    : thread_([&cq] {
        void* tag = nullptr;
        bool ok = false;
        while (cq.Next(&tag, &ok)) {
#if defined(__SANITIZE_THREAD__)
          __tsan_acquire(tag);  // the other half of completion::tag()
#endif
          static_cast<completion*>(tag)->complete(ok);
        }
      }) {
}

cq_thread::~cq_thread() { join(); }

void cq_thread::join() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace baton::grpc::detail
