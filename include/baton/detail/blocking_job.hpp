// SPDX-License-Identifier: BSL-1.0
// A job for the loop's blocking pool, and the two calls header templates need to use the pool.
#pragma once

// Contract: a blocking_job is intrusive: whoever submits it owns its storage (to_thread embeds
// it in the per-call state) and keeps it alive until `run` has been called. The pool links
// jobs through `next` while they are queued, and calls `run(job)` once, on a pool thread.
//   Thread-safety: submit_blocking() may be called from any thread of the loop.

namespace baton::detail {

class loop;
struct task_base;

struct blocking_job {
  blocking_job* next = nullptr;                        // the pool's queue link
  void (*run)(blocking_job* self) noexcept = nullptr;  // called once, on a pool thread
};

/// Queues j on loop l's blocking pool (started on first use). Never blocks, never allocates
/// once the pool's threads exist.
void submit_blocking(loop& l, blocking_job* j);

/// Wakes task t, which a pool job of its own loop has just completed: the completion goes back
/// to the loop through its batched cross-thread queue (loop::push_remote), not one post per
/// call. Only from a thread of t's loop's blocking pool, which the loop joins before it ends.
void wake_from_pool(task_base* t) noexcept;

}  // namespace baton::detail
