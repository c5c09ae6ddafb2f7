// SPDX-License-Identifier: BSL-1.0
// The scheduler of a threaded loop: a run queue and a LIFO slot per worker, stealing, the
// injection queue, parking. docs/design/scheduler.md explains the protocol and its bounds.
//
//   worker ── lifo slot ──▶ the task woken or spawned last (at most 3 in a row, stealable once
//     │                      its owner has been in one step for a while)
//     ├─ run queue (ring of 256) ──▶ oldest first; idle workers steal half
//     └─ hand-off stack ──▶ tasks whose context it held when another worker popped them
//   loop ── injection queue (gate mutex): pushes from outside, overflow of full rings
//     ├─ sleepers (idle mutex) + num_searching_ / num_parked_: who to wake, at most one or two
//     │    searching at a time
//     └─ io_owner_: the one worker running Asio handlers now (polling, or parked in run_one)

#include "loop.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <thread>

namespace baton::detail {

namespace {

constexpr unsigned max_lifo_streak = 3;       // LIFO steps in a row before the ring's head goes
constexpr std::uint32_t check_interval = 61;  // steps between looks at injection queue, Asio
constexpr auto search_time = std::chrono::microseconds(20);  // a searcher's spin before parking
constexpr auto lifo_recheck = std::chrono::milliseconds(1);  // see park()

}  // namespace

void spin_mutex::yield_now() noexcept { std::this_thread::yield(); }

void loop::work_threaded(worker& w) {
  // acquire: pairs with stop_workers()'s store; a worker that stops has seen what came before.
  while (!stop_workers_.load(std::memory_order_acquire)) {
    task_base* t = next_task(w);
    if (t == nullptr && start_searching(w)) t = search(w);
    if (t == nullptr) {
      park(w);
      continue;
    }
    if (w.searching) stop_searching(w);
    resume(w, t);
    after_step(w);
  }
  if (w.searching) stop_searching(w);
}

void loop::push_local(worker& w, task_base* t) noexcept {
  if (t == running_task) {
    // The running task scheduled itself (sleep(0), or a completion that ran inside its step):
    // it goes behind the queued tasks once its step has ended, never into a queue a thief can
    // see while it still runs.
    w.yielded = t;
    return;
  }
  // The LIFO slot: the task just woken or spawned runs next on this worker, while its data is
  // still in this cache. The slot is empty most of the time, and only its owner fills it, so
  // filling an empty slot needs no read-modify-write (relaxed: thieves only ever empty it, so
  // an empty slot seen here stays empty until this thread fills it).
  task_base* prev = w.lifo.load(std::memory_order_relaxed);
  if (prev == nullptr) {
    w.lifo.store(t, std::memory_order_release);  // release: the task's state before the slot
  } else if ((prev = w.lifo.exchange(t, std::memory_order_acq_rel)) != nullptr) {
    // acq_rel: release publishes t to thieves; acquire takes prev back as its pusher left it.
    push_ring(w, prev);  // it notifies
    return;
  }
  // Wake an idle worker (if none is searching already): should this step run long, it takes
  // the task from the slot. Skipped while this worker is parked in Asio running a handler: it
  // leaves the io_context for its queues right after. Relaxed: only this thread writes it.
  if (!w.driving.load(std::memory_order_relaxed)) notify_one();
}

void loop::push_ring(worker& w, task_base* t) noexcept {
  while (!w.queue.push(t)) {
    // Full: the older half and t go to the injection queue, where every worker finds them.
    task_base* first = w.queue.take_half();
    if (first == nullptr) continue;  // thieves made room meanwhile
    task_base* last = first;
    while (last->next_ready != nullptr) last = last->next_ready;
    last->next_ready = t;
    std::lock_guard lock(gate_->mutex);
    inject_locked(first, t, run_queue::capacity / 2 + 1);  // it notifies
    return;
  }
  if (!w.driving.load(std::memory_order_relaxed)) notify_one();  // relaxed: this thread's flag
}

task_base* loop::next_task(worker& w) noexcept {
  ++w.tick;
  task_base* t = nullptr;
  // Now and then the injection queue first, so that local work cannot starve it.
  if (w.tick % check_interval == 0 && (t = pop_injected(w)) != nullptr) return t;
  // Relaxed first look, skipping the CAS when empty. The CAS's acquire: a thief may have
  // emptied the slot; winning it, see the task as its pusher left it.
  t = w.lifo.load(std::memory_order_relaxed);
  if (t != nullptr && w.lifo.compare_exchange_strong(t, nullptr, std::memory_order_acquire,
                                                     std::memory_order_relaxed)) {
    if (w.lifo_streak < max_lifo_streak) {
      ++w.lifo_streak;
      return t;
    }
    // Three in a row: the slot's task goes behind the queue, so that two tasks waking each
    // other cannot keep the others waiting.
    push_ring(w, t);
  }
  w.lifo_streak = 0;
  if ((t = w.queue.pop()) != nullptr) return t;
  return pop_injected(w);
}

task_base* loop::pop_injected(worker& w) noexcept {
  // Relaxed: a hint that skips the lock; the count is exact under gate_->mutex (a push missed
  // here notifies a worker after it).
  if (inject_len_.load(std::memory_order_relaxed) == 0) return nullptr;
  task_base* first = nullptr;
  {
    std::lock_guard lock(gate_->mutex);
    // A fair share, so that other workers find some too; at most half a ring. Relaxed here and
    // in the store below: written only under gate_->mutex, which orders them.
    const std::size_t len = inject_len_.load(std::memory_order_relaxed);
    std::size_t n = std::min<std::size_t>(len / threads_ + 1, run_queue::capacity / 2);
    n = std::min(n, len);
    if (n == 0) return nullptr;
    first = inject_head_;
    task_base* last = first;
    for (std::size_t i = 1; i < n; ++i) last = last->next_ready;
    inject_head_ = last->next_ready;
    if (inject_head_ == nullptr) inject_tail_ = nullptr;
    last->next_ready = nullptr;
    inject_len_.store(len - n, std::memory_order_relaxed);  // relaxed: as the load above
  }
  for (task_base* t = first->next_ready; t != nullptr;) {
    task_base* next = t->next_ready;
    if (!w.queue.push(t)) push_ring(w, t);
    t = next;
  }
  if (first->next_ready != nullptr) notify_one();
  return first;
}

void loop::after_step(worker& w) noexcept {
  // relaxed: only a hint for thieves (has this worker left the step it was in?).
  w.steps.store(w.steps.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (w.yielded != nullptr) push_ring(w, std::exchange(w.yielded, nullptr));
  // Relaxed look, skipping the exchange when empty; the exchange's acquire: the tasks' state as
  // the workers that pushed them left it.
  if (w.handoff.load(std::memory_order_relaxed) != nullptr) {
    task_base* t = w.handoff.exchange(nullptr, std::memory_order_acquire);
    while (t != nullptr) push_ring(w, std::exchange(t, t->next_ready));
  }
  if (w.tick % check_interval == check_interval / 2 && io_check_due(io_turn_)) poll_io(w);
}

void loop::poll_io(worker& w) noexcept {
  // One worker at a time runs Asio's handlers, so that a wake-up posted for a worker parked in
  // the io_context can only be run by that worker. A parked one holds the role: skip.
  unsigned none = 0;
  // acquire: see what the previous owner's handlers did.
  if (io_owner_.load(std::memory_order_relaxed) != 0 ||
      !io_owner_.compare_exchange_strong(none, w.index + 1, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
    return;
  }
  flush(w.refs);
  run_handlers(false);
  io_owner_.store(0, std::memory_order_release);  // release: pairs with the acquire above
}

bool loop::start_searching(worker& w) noexcept {
  if (w.searching) return true;
  // At most max_searching_ at once (one, or two from eight workers): more would only fight
  // over the same queues. The check and the increment are not one step, so two may overshoot
  // by one; that bound is enough (so the check is relaxed). The increment is seq_cst: ordered
  // with notify_one()'s fence, which reads the count to decide whether to wake anyone.
  if (num_searching_.load(std::memory_order_relaxed) >= max_searching_) return false;
  num_searching_.fetch_add(1, std::memory_order_seq_cst);
  w.searching = true;
  return true;
}

void loop::stop_searching(worker& w) noexcept {
  w.searching = false;
  // The last searcher found work: there may be more, so another worker takes over the
  // search (tokio's rule). seq_cst: ordered with notify_one()'s fence.
  if (num_searching_.fetch_sub(1, std::memory_order_seq_cst) == 1) notify_one();
}

task_base* loop::search(worker& w) noexcept {
  const auto until = std::chrono::steady_clock::now() + search_time;
  for (unsigned round = 0;; ++round) {
    w.rng ^= w.rng << 13;
    w.rng ^= w.rng >> 17;
    w.rng ^= w.rng << 5;
    const unsigned first = w.rng % threads_;
    for (unsigned i = 0; i < threads_; ++i) {
      worker& v = *workers_[(first + i) % threads_];
      if (&v == &w) continue;
      if (task_base* t = v.queue.steal_into(w.queue)) return t;
    }
    if (task_base* t = pop_injected(w)) return t;
    // Relaxed look, then the exchange's acquire (as in after_step()).
    if (w.handoff.load(std::memory_order_relaxed) != nullptr) {
      task_base* t = w.handoff.exchange(nullptr, std::memory_order_acquire);
      for (task_base* r = t->next_ready; r != nullptr;)
        push_ring(w, std::exchange(r, r->next_ready));
      return t;
    }
    // A LIFO slot whose owner has not finished a step since the last round: that step runs
    // long, so the task it woke or spawned is taken here instead of waiting for it. Relaxed
    // loads: a guess and a hint (a stale pair only delays the steal by a round); the CAS's
    // acquire sees the task as its pusher left it.
    for (unsigned i = 0; i < threads_; ++i) {
      worker& v = *workers_[i];
      if (&v == &w) continue;
      task_base* t = v.lifo.load(std::memory_order_relaxed);
      const std::uint64_t steps = v.steps.load(std::memory_order_relaxed);
      // acquire on success: the task as its pusher left it; relaxed on failure: nothing taken.
      if (t != nullptr && round != 0 && w.seen_steps[i] == steps &&
          v.lifo.compare_exchange_strong(t, nullptr, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
        return t;
      }
      w.seen_steps[i] = t != nullptr ? steps : no_steps;
    }
    if (round != 0 && std::chrono::steady_clock::now() >= until) return nullptr;
    // Relaxed: ends the search early; work_threaded() reads it again with acquire.
    if (stop_workers_.load(std::memory_order_relaxed)) return nullptr;
    std::this_thread::yield();  // a worker descheduled by the OS (more threads than cores)
  }
}

// seq_cst loads: park()'s last look, after its registration and fence (see notify_one()).
loop::visible loop::work_visible(const worker& w) const noexcept {
  if (w.handoff.load(std::memory_order_seq_cst) != nullptr) return visible::work;
  if (inject_len_.load(std::memory_order_seq_cst) != 0) return visible::work;
  visible found = visible::none;
  for (const auto& v : workers_) {
    if (v->queue.size() != 0) return visible::work;
    // seq_cst: as above, after park()'s fence.
    if (v->lifo.load(std::memory_order_seq_cst) != nullptr) found = visible::lifo_only;
  }
  return found;
}

void loop::notify_one() noexcept {
  // seq_cst fence: the push before it and the loads after it are not reordered, and a worker
  // going to park registers (idle_mutex_, num_parked_) before it looks at the queues. So
  // either it sees the task, or this sees it parked and wakes it.
  // The loads are relaxed: the fence orders them, and they are checked again under the mutex.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (num_searching_.load(std::memory_order_relaxed) != 0 ||
      num_parked_.load(std::memory_order_relaxed) == 0) {
    return;  // a searcher will find the task, or nobody is idle
  }
  worker* target = nullptr;
  {
    std::lock_guard lock(idle_mutex_);
    // Relaxed: after the fence above; a searcher that started since finds the task anyway.
    if (num_searching_.load(std::memory_order_relaxed) != 0 || sleepers_.empty()) return;
    // A worker parked on its futex rather than the driver, which keeps watching Asio (relaxed:
    // a preference; unpark() wakes a driver correctly too).
    auto it = std::find_if(sleepers_.rbegin(), sleepers_.rend(), [this](unsigned i) {
      return !workers_[i]->driving.load(std::memory_order_relaxed);
    });
    if (it == sleepers_.rend()) it = sleepers_.rbegin();
    target = workers_[*it].get();
    sleepers_.erase(std::next(it).base());
    // seq_cst, as every change of the two counts: other notifiers read them after their fence.
    num_parked_.fetch_sub(1, std::memory_order_seq_cst);
    num_searching_.fetch_add(1, std::memory_order_seq_cst);
    target->searching = true;  // it wakes up searching (read after its permit)
  }
  unpark(*target);
}

void loop::unpark(worker& w) noexcept {
  {
    std::lock_guard lock(w.park_mutex);
    // seq_cst, with driving's in park(): either the worker sees its permit before it blocks
    // in the io_context, or this sees it driving and interrupts run_one() with a handler only
    // it can run (it owns io_owner_).
    w.permit.store(1, std::memory_order_seq_cst);
  }
  if (w.driving.load(std::memory_order_seq_cst)) asio::post(ioc_, [] {});
  w.park_cv.notify_one();
}

void loop::park(worker& w) noexcept {
  {
    std::lock_guard lock(idle_mutex_);
    sleepers_.push_back(w.index);
    // seq_cst: registered before the fence below, for notifiers that read the counts after
    // theirs.
    num_parked_.fetch_add(1, std::memory_order_seq_cst);
    if (w.searching) {
      w.searching = false;
      num_searching_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
  // Going idle: map references kept for the next spawn are dropped (see the one-thread loop).
  flush(w.refs);
  // Registered first, then a last look: the seq_cst fence pairs with notify_one()'s. acquire on
  // stop_workers_: as in work_threaded().
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const visible seen =
      stop_workers_.load(std::memory_order_acquire) ? visible::work : work_visible(w);
  bool wake = seen == visible::work;
  // Only LIFO slots of busy workers hold tasks: their owners run them after the current step,
  // but a step that runs long must not keep them waiting, so this worker sleeps only a while
  // and then searches again (a thief takes a slot whose owner is still in the same step).
  const bool for_a_while = seen == visible::lifo_only;
  unsigned none = 0;
  // acquire: see what the previous Asio owner's handlers did (it released io_owner_).
  if (!wake && !for_a_while &&
      io_owner_.compare_exchange_strong(none, w.index + 1, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
    // The driver: parked inside the io_context, so timers and sockets wake it too. seq_cst on
    // driving and permit: with unpark()'s (see there). acquire on stop_workers_: as above.
    w.driving.store(true, std::memory_order_seq_cst);
    while (w.permit.load(std::memory_order_seq_cst) == 0 &&
           !stop_workers_.load(std::memory_order_acquire)) {
      run_handlers(true);
      // A handler it ran may have queued a task here (a timer, a socket): go and run it.
      // Relaxed: its own slot and ring, which this thread filled; inject_len_ is a hint.
      if (w.lifo.load(std::memory_order_relaxed) != nullptr || w.queue.size() != 0 ||
          inject_len_.load(std::memory_order_relaxed) != 0) {
        wake = true;
        break;
      }
    }
    // Relaxed: a notifier that still sees it driving only posts a spare wake-up. release:
    // the next owner sees what these handlers did. acquire: as above.
    w.driving.store(false, std::memory_order_relaxed);
    io_owner_.store(0, std::memory_order_release);
    if (stop_workers_.load(std::memory_order_acquire)) wake = true;
  } else if (!wake) {
    std::unique_lock lock(w.park_mutex);
    // Relaxed: the permit is written under park_mutex, which this holds.
    auto permitted = [&w] { return w.permit.load(std::memory_order_relaxed) != 0; };
    if (!for_a_while) {
      w.park_cv.wait(lock, permitted);
    } else if (!w.park_cv.wait_for(lock, lifo_recheck, permitted)) {
      wake = true;  // time to look at those slots again
    }
  }
  if (wake) {
    // Leave by itself, unless a notifier has already taken it off the list (then its permit
    // is on the way, and it wakes up searching).
    bool left = false;
    {
      std::lock_guard lock(idle_mutex_);
      if (auto it = std::find(sleepers_.begin(), sleepers_.end(), w.index); it != sleepers_.end()) {
        sleepers_.erase(it);
        num_parked_.fetch_sub(1, std::memory_order_seq_cst);  // seq_cst: as in notify_one()
        left = true;
      }
    }
    if (left) {
      if (w.queue.size() > 1) notify_one();  // handlers queued more than it runs next
      return;
    }
  }
  // The notifier's permit (it wrote `searching` before, under park_mutex). Relaxed: under
  // park_mutex, which orders the permit and `searching`.
  std::unique_lock lock(w.park_mutex);
  w.park_cv.wait(lock, [&w] { return w.permit.load(std::memory_order_relaxed) != 0; });
  w.permit.store(0, std::memory_order_relaxed);
}

worker* loop::worker_by_tag(std::uintptr_t tag) noexcept {
  for (const auto& v : workers_) {
    // Relaxed: a match is the calling thread's own tag, written by this very thread (a worker
    // writes its own tag before its first task); another's tag only has to differ.
    if (v->tag.load(std::memory_order_relaxed) == tag) return v.get();
  }
  return nullptr;
}

void loop::hand_off(worker& holder, task_base* t) noexcept {
  // Relaxed: a first guess for the CAS.
  task_base* head = holder.handoff.load(std::memory_order_relaxed);
  do {
    t->next_ready = head;
    // seq_cst: ordered with the holder's registration as a sleeper (see below).
  } while (!holder.handoff.compare_exchange_weak(head, t, std::memory_order_seq_cst,
                                                 std::memory_order_relaxed));
  // The holder takes it after its step. If it has gone to park since, wake it: it registered
  // under idle_mutex_ before its last look at its hand-off stack.
  worker* wake = nullptr;
  {
    std::lock_guard lock(idle_mutex_);
    if (auto it = std::find(sleepers_.begin(), sleepers_.end(), holder.index);
        it != sleepers_.end()) {
      sleepers_.erase(it);
      // seq_cst: as in notify_one().
      num_parked_.fetch_sub(1, std::memory_order_seq_cst);
      num_searching_.fetch_add(1, std::memory_order_seq_cst);
      holder.searching = true;
      wake = &holder;
    }
  }
  if (wake != nullptr) unpark(*wake);
}

void loop::stop_workers() noexcept {
  // seq_cst: a parking worker reads it after its fence (park()), so it either sees it or is
  // among the sleepers woken below.
  stop_workers_.store(true, std::memory_order_seq_cst);
  // The driver leaves run_one() (stop() cannot be swallowed by a handler), the others their
  // futex.
  ioc_.stop();
  std::lock_guard lock(idle_mutex_);
  for (unsigned i : sleepers_) unpark(*workers_[i]);
  sleepers_.clear();
  num_parked_.store(0, std::memory_order_seq_cst);  // seq_cst: as every change of the count
}

void loop::drain_workers() noexcept {
  // The workers are joined: this thread is the only one, and runs what they left (a task a
  // late loop_handle job spawned) from the one-thread ready queue. The join already orders
  // what they wrote; acquire keeps the exchanges as after_step() reads them.
  for (const auto& v : workers_) {
    if (task_base* t = v->lifo.exchange(nullptr, std::memory_order_acquire)) push(t);
    while (task_base* t = v->queue.pop()) push(t);
    for (task_base* t = v->handoff.exchange(nullptr, std::memory_order_acquire); t != nullptr;) {
      push(std::exchange(t, t->next_ready));
    }
    if (v->yielded != nullptr) push(std::exchange(v->yielded, nullptr));
  }
}

}  // namespace baton::detail
