// SPDX-License-Identifier: BSL-1.0
// The loop: scheduling, resuming with the task's context installed, finishing, shutdown.
//
//   loop ── ready queue (FIFO of task_base*) ──▶ task_base ── resume_point ──▶ innermost frame
//     │       one loop thread: this queue;          │ ctx() ──▶ context_cell ── root ──▶ map
//     │       several: a run queue + LIFO slot per worker (runtime/scheduler.cpp)
//     ├─ injection queue: tasks scheduled from threads outside the loop
//     └─ io_context (timers, sockets, cross-thread wake-ups)
//
//   A loop thread repeats: pop a ready task and resume it; every 64 resumes take the injection
//   queue and, if 50 us have passed since it last did, let Asio run its handlers (which push
//   tasks back to the ready queue); when nothing is ready, wait in Asio for the next one (or,
//   on a one-thread loop a library gave a park hook, in the hook: detail/park_hook.hpp).
//   Suspending never touches the scheduler: the awaiter hands the task to whoever completes the
//   operation, and that code calls schedule().
//
// The context path, from a resume to a get() (every step is a few loads; no lock, no lookup
// by name):
//
//   1. loop::resume(t) enters t->ctx(): the task's own cell (a task is-a context_cell), or
//      the cell of a context shared through spawn(t, ctx) (task_base::ctx, task_base.hpp).
//      try_enter() (context.cpp) swaps the cell's owner word from 0 to this thread's tag
//      (exclusive: one thread at a time) and sets the thread-local current_cell to the cell.
//   2. The task's innermost frame runs. Nested co_awaits of task<T> are frames of the same
//      task (task.hpp), so they run in the same cell: nothing to install.
//   3. var.get() (context_var.hpp) reads current_cell (one TLS load) and looks its key up in
//      the cell's root: find() in detail/context_map.hpp, a persistent hash trie whose flat
//      first node answers with one index-table byte and one compare.
//   4. var.set(v) makes a new root (insert(), the old map is never changed) and stores it in
//      the cell (set_entry(), token.cpp). spawn() starts a child from the same root with one
//      reference more (spawn.hpp: O(1), the child's sets make its own new roots).
//   5. When the frame suspends or finishes, resume() leaves the cell: current_cell goes back
//      to the loop thread's own empty context and the owner word to 0 (a release store that
//      publishes the task's sets to whichever thread enters next).

#include "loop.hpp"

#include <baton/detail/asio_glue.hpp>
#include <baton/detail/cancel.hpp>
#include <baton/errors.hpp>
#include <baton/loop_handle.hpp>
#include <baton/task_handle.hpp>
#include <baton/to_thread.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstdio>
#include <unordered_map>
#include <typeinfo>

namespace baton::detail {

[[gnu::tls_model("initial-exec")]] constinit thread_local worker* current_worker = nullptr;
[[gnu::tls_model("initial-exec")]] constinit thread_local frame_cache* current_frames = nullptr;
[[gnu::tls_model("initial-exec")]] constinit thread_local task_base* running_task = nullptr;

namespace {

std::atomic<std::uint64_t> next_anonymous{1};

using handler_ptr = std::shared_ptr<const std::function<void(const unhandled_failure&)>>;

/// The exception handlers of the loops alive now, by loop generation (unlike a loop's address,
/// a generation is not reused until 2^32 loops later, so a task that outlives its loop cannot
/// reach the handler of a loop that happens to take its place). Leaked on purpose: tasks may
/// die after static destruction. 32 bits, so a task stores its loop's generation in 4 bytes.
struct handler_registry {
  std::mutex mutex;
  std::unordered_map<std::uint32_t, handler_ptr> handlers;
  std::uint32_t next_generation = 1;
};
handler_registry& registry() {
  static auto* r = new handler_registry;
  return *r;
}

std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return std::string(typeid(x).name()) + ": " + x.what();
  } catch (...) {
    return "unknown exception";
  }
}

enum class cancellation { no, exactly, derived };

// What kind of exception e is: a cancelled_error, a type derived from it, or neither.
cancellation cancellation_of(const std::exception_ptr& e) {
#if defined(__GLIBCXX__) && defined(__cpp_rtti)
  // The common case without a throw (a rethrow costs about 1.5 µs, which a million cancelled
  // tasks would pay once more each): libstdc++ tells the exception's exact type. A type
  // derived from cancelled_error still needs the catch below.
  if (const std::type_info* type = e.__cxa_exception_type(); type != nullptr) {
    if (*type == typeid(cancelled_error)) return cancellation::exactly;
  }
#endif
  try {
    std::rethrow_exception(e);
  } catch (const cancelled_error& x) {
    return typeid(x) == typeid(cancelled_error) ? cancellation::exactly : cancellation::derived;
  } catch (...) {
    return cancellation::no;
  }
}

// The cancelled_error that every task of this thread that ended by a plain cancellation keeps
// instead of its own (they are all alike: no state but the fixed message). Its own is freed at
// once, where it was thrown, so a million tasks ended by cancellation do not keep a million
// exception objects alive until their handles go (about 200 bytes each, on a heap that grows
// for them). One per thread, so that the copies' reference counts stay on this thread's line.
const std::exception_ptr& shared_cancellation() {
  thread_local const std::exception_ptr e = std::make_exception_ptr(cancelled_error());
  return e;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// task_base

task_base::task_base() noexcept : error() { id = new_cell_id(); }

task_base::~task_base() {
  // Relaxed: the last reference is being dropped, nobody else writes status now.
  const task_status s = status.load(std::memory_order_relaxed);
  if (resume_point && (s == task_status::created || s == task_status::scheduled)) {
    resume_point.destroy();  // the root frame of a task that never ran (its loop ended first)
  }
  if (in_shared_context()) {
    context_cell* const shared = shared_cell();
    root = nullptr;  // it held the shared cell, not a map (~context_cell releases root)
    release(shared);
  }
  report_unretrieved_failure();
  error.~exception_ptr();
}

void task_base::report_unretrieved_failure() noexcept {
  // `error` is the live member of its union: a task is never destroyed while on a wait list.
  // acquire: pairs with retrieve_error()'s release, so a retrieval on another thread is seen.
  const std::uintptr_t w = waiters.load(std::memory_order_acquire);
  if (!error || (w & (retrieved_bit | cancelled_bit)) != 0) return;
  // relaxed: the last reference is being dropped; the bit only stops ~task_base reporting again.
  waiters.fetch_or(retrieved_bit, std::memory_order_relaxed);
  report_unretrieved(loop_generation, unhandled_failure{task_name(this), error});
}

void retain_task(task_base* t) noexcept { retain(static_cast<context_cell*>(t)); }

// The last reference may be a handle, the loop's, or a context from get_context(): all end in
// ~task_base, which reports a failure nobody looked at.
void release_task(task_base* t) noexcept { release(static_cast<context_cell*>(t)); }

void report_unretrieved(std::uint32_t generation, const unhandled_failure& f) noexcept {
  handler_ptr h;
  {
    handler_registry& r = registry();
    std::lock_guard lock(r.mutex);
    if (auto it = r.handlers.find(generation); it != r.handlers.end()) h = it->second;
  }
  if (!h || !*h) return default_report(f);
  try {
    (*h)(f);
  } catch (...) {
    default_report(f);
  }
}

std::string task_name(const task_base* t) {
  // In ~task_base a named state's part is gone, and stored_name() is task_base's (nullptr): the
  // name falls back to task-<id>. So a named state reports its failure before that.
  if (const std::string* name = t->named() ? t->stored_name() : nullptr) return *name;
  return "task-" + std::to_string(t->id);
}

bool add_waiter(task_base* t, waiter* w) noexcept {
  // acquire: see finished_bit with the result it publishes (complete()'s exchange).
  std::uintptr_t head = t->waiters.load(std::memory_order_acquire);
  do {
    if ((head & task_base::finished_bit) != 0) return false;
    w->next = reinterpret_cast<waiter*>(head);
    // release: the waiter's fields are visible to the finishing thread; acquire on failure to
    // re-read the list head.
  } while (!t->waiters.compare_exchange_weak(head, reinterpret_cast<std::uintptr_t>(w),
                                             std::memory_order_release, std::memory_order_acquire));
  return true;
}

void notify_join(waiter* w) noexcept { schedule(static_cast<join_waiter*>(w)->waiting); }

void throw_awaited_self() {
  throw baton::runtime_error("baton: a task cannot await its own handle");
}

std::exception_ptr retrieve_error(task_base* t) noexcept {
  if (!t->error) return nullptr;
  // Relaxed check: it only skips a redundant fetch_or (the bit is never cleared). release: the
  // bit pairs with ~task_base's acquire load, which then reports nothing.
  if ((t->waiters.load(std::memory_order_relaxed) & task_base::retrieved_bit) == 0) {
    t->waiters.fetch_or(task_base::retrieved_bit, std::memory_order_release);
  }
  return t->error;
}

std::coroutine_handle<> finish(task_base* t, std::coroutine_handle<> root) noexcept {
  t->take_result(root);
  root.destroy();
  complete(t);
  if (current_worker != nullptr) current_worker->just_finished = t;
  return std::noop_coroutine();
}

void complete(task_base* t) noexcept {
  {
    cancel_guard g(t);  // the commit point: a cancel() after it returns false, runs no hook
    if (!t->error && g.pending()) {
      // Cancelled while it ran, and it returned before reaching another suspension point:
      // as in asyncio (a task cancelled right before its coroutine stops), it ends cancelled.
      g.set_pending(false);
      t->error = shared_cancellation();
    }
    t->hook = {};
    // Relaxed: written under the cancel lock; done() readers use waiters, not status.
    t->status.store(task_status::done, std::memory_order_relaxed);
  }
  const cancellation how = t->error ? cancellation_of(t->error) : cancellation::no;
  if (how == cancellation::exactly) t->error = shared_cancellation();
  const std::uintptr_t final_bits =
      task_base::finished_bit | (how != cancellation::no ? task_base::cancelled_bit : 0);
  // acq_rel: publishes the result to waiters (who acquire finished_bit), and takes their nodes.
  std::uintptr_t list = t->waiters.exchange(final_bits, std::memory_order_acq_rel);
  waiter* rev = nullptr;  // notify in arrival order
  while (list != 0) {
    auto* w = reinterpret_cast<waiter*>(list);
    list = reinterpret_cast<std::uintptr_t>(w->next);
    w->next = rev;
    rev = w;
  }
  while (rev != nullptr) {
    waiter* next = rev->next;
    rev->notify(rev);
    rev = next;
  }
}

// ---------------------------------------------------------------------------------------------
// loop threads and their frames

worker_scope::worker_scope(worker& w, loop* l) noexcept
    : w_(w),
      prev_cache_(install_ref_cache(&w.refs)),
      prev_frames_(std::exchange(current_frames, &w.frames)) {
  w.lp = l;
  current_worker = &w;
}

worker_scope::~worker_scope() {
  current_worker = nullptr;
  current_frames = prev_frames_;
  flush(w_.refs);
  install_ref_cache(prev_cache_);
}

frame_cache::~frame_cache() {
  for (block* b : heads) {
    while (b != nullptr) ::operator delete(std::exchange(b, b->next));
  }
}

// ---------------------------------------------------------------------------------------------
// scheduling

loop* running_loop_or_null() noexcept {
  return current_worker != nullptr ? current_worker->lp : nullptr;
}

loop& running_loop(const char* what) {
  if (loop* l = running_loop_or_null()) return *l;
  throw baton::runtime_error(std::string("baton: ") + what +
                             " needs a running loop: call it from a task (inside baton::run)");
}

void start(loop& l, task_base* t) { l.start(t); }

void schedule(task_base* t) noexcept {
  loop* l = t->owner_loop;
  if (current_worker != nullptr && current_worker->lp == l) {
    l->push(t);
    return;
  }
  schedule_injected(*l, t, t, 1);
}

void schedule_injected(loop& l, task_base* first, task_base* last, std::size_t n) noexcept {
  // Under the gate's lock: the loop cannot be destroyed while this thread queues to it.
  loop_gate& g = *l.gate();
  std::lock_guard lock(g.mutex);
  if (g.alive != nullptr) l.inject_locked(first, last, n);
}

loop::loop(const run_options& opts)
    : ioc_(opts.threads > 1 ? static_cast<int>(opts.threads) : 1),
      threads_(std::max(1u, opts.threads)),
      blocking_threads_(opts.blocking_threads != 0
                            ? opts.blocking_threads
                            : std::min<std::size_t>(32, std::thread::hardware_concurrency() + 4)),
      debug_(debug_monitor::make(opts)) {
  work_guard_.emplace(ioc_.get_executor());
  shards_ = std::make_unique<live_shard[]>(shard_count());
  gate_ = std::make_shared<loop_gate>();
  gate_->open = this;
  gate_->alive = this;
  handler_registry& r = registry();
  std::lock_guard lock(r.mutex);
  generation_ = r.next_generation++;
  if (generation_ == 0) generation_ = r.next_generation++;  // 0 is "no loop" (wrapped around)
  r.handlers.emplace(generation_,
                     std::make_shared<const std::function<void(const unhandled_failure&)>>(
                         opts.exception_handler));
}

loop::~loop() {
  close_gate();
  {
    std::lock_guard lock(gate_->mutex);  // waits for any thread inside a post to us
    gate_->alive = nullptr;
  }
  handler_registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.handlers.erase(generation_);
}

void default_report(const unhandled_failure& f) noexcept {
  std::fprintf(stderr, "baton: task '%s' failed and nobody retrieved the error: %s\n",
               f.task_name.c_str(), describe(f.error).c_str());
}

blocking_pool& loop::blocking_jobs() {
  // acquire: pairs with the release store below; the pool is fully constructed.
  if (blocking_pool* p = pool_ready_.load(std::memory_order_acquire)) return *p;
  std::lock_guard lock(pool_mutex_);
  if (!pool_) {
    pool_.emplace(blocking_threads_);
    pool_ready_.store(&*pool_, std::memory_order_release);
  }
  return *pool_;
}

void loop::push_remote(task_base* t) noexcept {
  // Relaxed: a first guess for the CAS.
  task_base* head = remote_.load(std::memory_order_relaxed);
  do {
    t->next_ready = head;
    // release: the task's state (its result, written by the pusher) is visible to the drain,
    // which takes the stack with an acquire exchange.
  } while (!remote_.compare_exchange_weak(head, t, std::memory_order_release,
                                          std::memory_order_relaxed));
  if (head == nullptr) {
    asio::post(ioc_, [this] { drain_remote(); });
    // seq_cst, with the store in set_park_hook(): either this sees the hook, or the loop thread
    // installed it after the post above and lets Asio run before it first parks in it.
    if (hooked_.load(std::memory_order_seq_cst)) [[unlikely]] {
      std::lock_guard lock(gate_->mutex);
      wake_hook_locked();
    }
  }
}

void loop::drain_remote() noexcept {
  // acquire: pairs with push_remote()'s release CAS.
  task_base* list = remote_.exchange(nullptr, std::memory_order_acquire);
  task_base* rev = nullptr;  // oldest first, as they were woken
  while (list != nullptr) {
    task_base* next = list->next_ready;
    list->next_ready = rev;
    rev = list;
    list = next;
  }
  while (rev != nullptr) {
    task_base* next = rev->next_ready;
    push(rev);
    rev = next;
  }
}

void loop::start(task_base* t) {
  t->owner_loop = this;
  t->loop_generation = generation_;
  retain_task(t);  // the loop's reference, dropped when the task finishes
  // Relaxed: the task is not queued yet; the push below publishes it with the status.
  t->status.store(task_status::scheduled, std::memory_order_relaxed);
  worker* const w =
      current_worker != nullptr && current_worker->lp == this ? current_worker : nullptr;
  // index < threads_, so this is index % shard_count() without a division (a power of two).
  static_assert((task_base::live_shards & (task_base::live_shards - 1)) == 0);
  const unsigned shard = w != nullptr ? w->index % task_base::live_shards : 0;
  t->set_live_shard(shard);
  {
    live_shard& s = shards_[shard];
    shard_lock lock(s, threads_ > 1);
    t->live_next = s.head;
    if (s.head != nullptr) s.head->live_prev = t;
    s.head = t;
    ++s.count;
  }
  if (w != nullptr) {
    push(t);
  } else {
    schedule_injected(*this, t, t, 1);  // main, from the thread in run() of a threaded loop
  }
}

void loop::push(task_base* t) noexcept {
  if (threaded_) {
    push_local(*current_worker, t);
    return;
  }
  // One loop thread: a FIFO only it touches (asyncio's call_soon order).
  t->next_ready = nullptr;
  if (ready_tail_ != nullptr) {
    ready_tail_->next_ready = t;
  } else {
    ready_head_ = t;
  }
  ready_tail_ = t;
}

task_base* loop::pop() noexcept {
  task_base* t = ready_head_;
  if (t != nullptr) {
    ready_head_ = t->next_ready;
    if (ready_head_ == nullptr) ready_tail_ = nullptr;
  }
  return t;
}

bool loop::take_injected() noexcept {
  // Relaxed: a hint that skips the lock (a push missed here posts a handler that wakes the
  // loop); the count is exact under gate_->mutex, where the store below is made.
  if (inject_len_.load(std::memory_order_relaxed) == 0) return false;
  task_base* first = nullptr;
  task_base* last = nullptr;
  {
    std::lock_guard lock(gate_->mutex);
    first = std::exchange(inject_head_, nullptr);
    last = std::exchange(inject_tail_, nullptr);
    inject_len_.store(0, std::memory_order_relaxed);  // relaxed: under gate_->mutex
  }
  if (first == nullptr) return false;
  if (ready_tail_ != nullptr) {
    ready_tail_->next_ready = first;
  } else {
    ready_head_ = first;
  }
  ready_tail_ = last;
  return true;
}

void loop::inject_locked(task_base* first, task_base* last, std::size_t n) noexcept {
  last->next_ready = nullptr;
  const bool was_empty = inject_head_ == nullptr;
  if (inject_tail_ != nullptr) {
    inject_tail_->next_ready = first;
  } else {
    inject_head_ = first;
  }
  inject_tail_ = last;
  inject_len_.fetch_add(n, std::memory_order_relaxed);  // the lock orders it with the list
  if (threaded_) {
    notify_one();
  } else if (was_empty) {
    // The loop thread takes the whole list at once, so only a list that was empty needs a
    // wake-up: a later push finds it non-empty, and the loop thread will look anyway.
    wake_locked();
  }
}

void loop::wake_locked() noexcept {
  if (park_ == nullptr) [[likely]] {
    asio::post(ioc_, [] {});
  } else {
    park_->wake();
  }
}

bool loop::set_park_hook(park_hook* h) noexcept {
  std::lock_guard lock(gate_->mutex);
  if (h != nullptr && (threads_ > 1 || park_ != nullptr)) return false;
  park_ = h;
  io_posted_ = h != nullptr;  // Asio may hold posts made before the hook: run it first
  hooked_.store(h != nullptr, std::memory_order_seq_cst);  // see push_remote()
  return true;
}

std::chrono::steady_clock::time_point loop::next_deadline() noexcept {
  auto due = timers_.next_expiry();
  std::lock_guard lock(cell_wait_mutex_);
  if (cell_wait_head_ != nullptr) due = std::min(due, cell_wait_timer_.expiry());
  return due;
}

// Nothing is ready: wait in the hook instead of Asio. A thread that queues work calls wake()
// (wake_locked(), push_remote(), post_to_loop()) after queuing it. One that found the hook not
// yet prepared has queued before the look below, which finds the work: the injection queue and
// io_posted_ are read under the lock its pushers hold while they wake.
// Asio runs here only when something was posted to it through the gate (post_to_loop()), a
// baton timer is due (their driver is an Asio timer), or its turn is (io_check_due(): 50 us
// since it last ran): Asio's poll is an epoll_wait system call, and a busy hook parks once every
// call or two. A park that skips Asio ends when its turn comes. So what only Asio's own wait
// would notice (a socket, a signal_set, a plain Asio timer, a post made straight to the
// io_context) waits for the next turn: at most 50 us while the hook keeps waking, and
// hook_park_limit when it sleeps.
void loop::park_in_hook() {
  using clock = std::chrono::steady_clock;
  park_->prepare();
  bool found = false;
  bool posted = false;
  {
    std::lock_guard lock(gate_->mutex);
    found = inject_head_ != nullptr;
    posted = std::exchange(io_posted_, false);
  }
  const auto now = clock::now();
  const auto timer_due = next_deadline();
  auto until = std::min(timer_due, now + hook_park_limit);
  if (posted || timer_due <= now || io_check_due(io_turn_)) {
    run_handlers(false);
  } else {
    until = std::min(until, io_turn_.next());
  }
  found = found || ready_head_ != nullptr;
  park_->park(found ? clock::time_point::min() : until);
}

bool loop::nothing_live() noexcept {
  for (unsigned i = 0; i < shard_count(); ++i) {
    shard_lock lock(shards_[i], threads_ > 1);
    if (shards_[i].count != 0) return false;
  }
  return true;
}

void loop::on_finished(task_base* t) noexcept {
  bool shard_empty = false;
  {
    live_shard& s = shards_[t->live_shard()];
    shard_lock lock(s, threads_ > 1);
    if (t->live_prev != nullptr) t->live_prev->live_next = t->live_next;
    if (t->live_next != nullptr) t->live_next->live_prev = t->live_prev;
    if (s.head == t) s.head = t->live_next;
    t->live_prev = t->live_next = nullptr;
    shard_empty = --s.count == 0;
  }
  // Only the thread in run_main() waits for these two events; wake it wherever it sleeps. It
  // counts the shards itself: an empty shard is only a hint (draining_ is set before it
  // counts, and the shard locks order the two).
  if (t == main_ || (shard_empty && draining_.load(std::memory_order_acquire))) {
    if (threads_ == 1) {
      wake_all();
    } else {
      std::lock_guard lock(events_mutex_);
      events_.notify_all();
    }
  }
  release_task(t);  // the loop's reference
}

// The task's context is entered by someone else, so it cannot run now. Returns true when the
// holder has left meanwhile (try again), false when the task waits or has failed.
bool loop::context_busy(worker& w, task_base* t) noexcept {
  // Relaxed: only who holds it matters, no data is read through it. A worker that has left
  // since finds the task handed to it and runs it; a stale 0 only means one more try.
  const std::uintptr_t holder = t->ctx()->owner.load(std::memory_order_relaxed);
  if (holder == 0 || (holder & 1) != 0) return true;  // left, or only read: try again
  if (holder == caller_tag_) {
    // Entered by the thread blocked in run() (a context::run around baton::run): it stays
    // entered until the loop ends, so the task can never run. Fail it, clearly.
    fail_unrunnable(t);
    return false;
  }
  // Never two things in one context at once, and no spinning: a loop thread of ours that holds
  // it queues the task once its step ends; any other holder (a plain thread in context::run,
  // another loop) is waited for on a timer.
  if (worker* h = threaded_ ? worker_by_tag(holder) : nullptr; h != nullptr && h != &w) {
    hand_off(*h, t);
  } else {
    wait_for_cell(t);
  }
  return false;
}

// Resumes t's innermost frame with running_task set; returns t if it finished in this step
// (finish() reports it through the worker), else nullptr.
[[gnu::always_inline]] inline task_base* loop::run_step(worker& w, task_base* t) noexcept {
  running_task = t;
  // Relaxed: status is for introspection and for this thread's own checks.
  t->status.store(task_status::running, std::memory_order_relaxed);
  const std::coroutine_handle<> step = std::exchange(t->resume_point, {});
  if (debug_ == nullptr) [[likely]] {
    step.resume();
  } else {
    debug_->step(t, step);  // debug mode: times the step (debug.cpp)
  }
  running_task = nullptr;
  task_base* const finished = std::exchange(w.just_finished, nullptr);
  // Relaxed: as above.
  if (finished == nullptr) t->status.store(task_status::suspended, std::memory_order_relaxed);
  return finished;
}

// Cancelled before its first step: as in asyncio, the body never starts (nothing of it could
// catch the error yet). Finished here, inside its context like any step; returns t.
task_base* loop::cancel_before_start(task_base* t) noexcept {
  {
    cancel_guard g(t);
    g.set_pending(false);  // consumed, as a step would
  }
  t->error = shared_cancellation();
  std::exchange(t->resume_point, {}).destroy();  // the root frame: it never ran
  complete(t);
  return t;
}

// One step of t: enter its context, run its frame until it suspends or finishes, leave.
void loop::resume(worker& w, task_base* t) noexcept {
  context_cell* const cell = t->ctx();
  context_cell* const prev = current_cell;
  while (!try_enter(cell)) [[unlikely]] {
      if (!context_busy(w, t)) return;
    }
  sync_mirrors();  // before any code of the task runs (leave() below syncs nothing: see work())
  task_base* finished = nullptr;  // a task that finished in this step, released after leaving
  // Relaxed: the queue the task came through (released by its pusher, acquired by the pop)
  // orders start()'s write.
  if (t->status.load(std::memory_order_relaxed) == task_status::scheduled && cancel_pending(t))
      [[unlikely]] {
    finished = cancel_before_start(t);
  } else {
    finished = run_step(w, t);
  }
  leave(cell, prev);
  if (finished != nullptr) on_finished(finished);
}

void loop::fail_unrunnable(task_base* t) noexcept {
  t->error = std::make_exception_ptr(
      context_error("baton: task '" + task_name(t) +
                    "' cannot run: its context is entered by the thread that called run()"));
  // Its context was entered before the loop started, so it never ran: resume_point is still
  // the root frame.
  std::exchange(t->resume_point, {}).destroy();
  complete(t);
  on_finished(t);
}

void loop::wake_all() noexcept {
  for (unsigned i = 0; i < threads_; ++i) asio::post(ioc_, [] {});
}

void loop::wait_for_cell(task_base* t) noexcept {
  std::lock_guard lock(cell_wait_mutex_);
  const bool arm = cell_wait_head_ == nullptr;
  t->next_ready = cell_wait_head_;
  cell_wait_head_ = t;
  if (!arm) return;
  // The delay doubles while tasks keep waiting (up to 10 ms), and starts again at 50 us once
  // a retry has been quiet for twice the delay: a wait that costs nothing measurable.
  using std::chrono::microseconds;
  const auto now = std::chrono::steady_clock::now();
  cell_wait_delay_ = now - cell_wait_last_ < 2 * cell_wait_delay_
                         ? std::min(2 * cell_wait_delay_, microseconds(10'000))
                         : microseconds(50);
  cell_wait_timer_.expires_after(cell_wait_delay_);
  cell_wait_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) retry_cell_waiters();
  });
}

void loop::retry_cell_waiters() noexcept {
  task_base* list = nullptr;
  {
    std::lock_guard lock(cell_wait_mutex_);
    list = std::exchange(cell_wait_head_, nullptr);
    cell_wait_last_ = std::chrono::steady_clock::now();
  }
  // Runs as an Asio handler on a loop thread: each goes back to a ready queue, to try again.
  while (list != nullptr) push(std::exchange(list, list->next_ready));
}

void loop::work(worker& w, const std::function<bool()>& until) {
  unsigned since_poll = 0;
  while (!until()) {
    if (task_base* t = pop()) {
      resume(w, t);
      if (++since_poll == 64) {
        since_poll = 0;
        take_injected();
        if (io_check_due(io_turn_)) {
          run_handlers(false);
          if (park_ != nullptr) park_->poll();
        }
      }
      continue;
    }
    since_poll = 0;
    if (take_injected()) continue;
    // Going idle: map references kept for the next spawn are dropped now, so what the
    // finished tasks' contexts held does not outlive them by more than a busy spell.
    flush(w.refs);
    // Other threads queue to this loop through the injection queue and wake it with a posted
    // handler, which ends run_one() (or with the park hook's wake()). The flush may have run value
    // destructors, which may have spawned: look again first (inject_len_ relaxed: a hint, as in
    // take_injected()).
    if (ready_head_ == nullptr && inject_len_.load(std::memory_order_relaxed) == 0 && !until()) {
      if (park_ == nullptr) [[likely]] {
        run_handlers(true);
      } else {
        park_in_hook();
      }
    }
  }
}

void loop::run_handlers(bool wait) {
  // Plain Asio handlers: each starts in an empty context (this thread's base context, which
  // a loop thread is in between tasks) and what it sets is gone when it returns, so nothing
  // flows from one handler to the next. Mirrors follow before the first one runs.
  sync_mirrors();
  if (wait) {
    if (ioc_.run_one() != 0) forget_handler_context();
    return;
  }
  while (ioc_.poll_one() != 0) forget_handler_context();
}

void forget_handler_context() noexcept {
  context_cell* const base = current_cell;
  if (base->root != nullptr || base->id != 0) [[unlikely]] {
    release(base->root);
    set_root(base, nullptr);
    base->id = 0;  // a token the handler made must not reset anything in the next one
  }
  sync_mirrors();
}

void loop::cancel_all() noexcept {
  std::vector<task_base*> alive;
  for_each_live([&](task_base* t) {
    retain_task(t);
    alive.push_back(t);
  });
  for (task_base* t : alive) {
    cancel(t);
    release_task(t);
  }
}

template <class WaitUntil>
void loop::finish_main(task_base* main, WaitUntil wait_until) {
  wait_until([main] { return main->done(); });
  close_gate();
  // Tasks spawned by the clean-up run to their end. seq_cst: before the shards are counted
  // (on_finished() reads it with acquire, and then reports the last live task).
  draining_.store(true, std::memory_order_seq_cst);
  cancel_all();
  wait_until([this] { return nothing_live(); });
}

void loop::run_main(task_base* main) {
  main_ = main;
  caller_tag_ = thread_tag();
  if (threads_ == 1) {
    // This thread is the loop. Between tasks it runs in an empty context of its own, so plain
    // Asio handlers never see or change the caller's context.
    worker w;
    worker_scope scope(w, this);
    context base;  // left also when a handler throws: the caller's context comes back
    base.run([&] {
      start(main);
      finish_main(main, [&](const std::function<bool()>& until) { work(w, until); });
      shutdown();
    });
    return;
  }
  // Several loop threads: they all run work_threaded(); this thread only coordinates, so that
  // the events it waits for cannot be swallowed by a loop thread's wake-up.
  max_searching_ = threads_ >= 8 ? 2 : 1;
  for (unsigned i = 0; i < threads_; ++i) {
    workers_.push_back(std::make_unique<worker>());
    workers_.back()->index = i;
    workers_.back()->rng = 0x9e3779b9u * (i + 1);
    workers_.back()->seen_steps.assign(threads_, no_steps);
  }
  threaded_ = true;
  for (unsigned i = 0; i < threads_; ++i) {
    extra_threads_.emplace_back([this, i] {
      worker& ew = *workers_[i];
      worker_scope scope(ew, this);
      // Relaxed: only this thread's worker_by_tag() must find it (see there).
      ew.tag.store(thread_tag(), std::memory_order_relaxed);
      context base;  // between tasks, an empty context of this thread's own
      base.run([&] { work_threaded(ew); });
    });
  }
  start(main);
  finish_main(main, [this](const std::function<bool()>& until) {
    std::unique_lock lock(events_mutex_);
    events_.wait(lock, until);
  });
  stop_workers();
  for (auto& th : extra_threads_) th.join();
  ioc_.restart();
  // A loop_handle job accepted before the gate closed may have spawned a task after the last
  // check: this thread, now the only one, runs whatever is left before refusing more work.
  {
    std::lock_guard lock(gate_->mutex);
    threaded_ = false;  // foreign pushes read it under this lock
  }
  drain_workers();
  worker w;
  worker_scope scope(w, this);
  context base;
  base.run([&] {
    work(w, [this] { return nothing_live(); });
    shutdown();
  });
}

void loop::close_gate() noexcept {
  std::lock_guard lock(gate_->mutex);
  gate_->open = nullptr;
}

void loop::shutdown() {
  close_gate();
  // release: a job that reads false (acquire in accepting()) sees the loop shut down.
  accepting_.store(false, std::memory_order_release);
  {
    std::lock_guard lock(pool_mutex_);
    if (pool_) {
      pool_->join();
      pool_ready_.store(nullptr, std::memory_order_relaxed);  // no task is left to submit
      pool_.reset();
    }
  }
  timers_.shutdown();
  work_guard_.reset();
  cell_wait_timer_.cancel();
  run_handlers(false);  // completions posted during shutdown (they find nothing left to do)
}

void run_main(task_base* main, const run_options& opts) {
  loop l(opts);
  l.run_main(main);
}

// ---------------------------------------------------------------------------------------------
// the loop as header templates and loop_handle reach it (declared in detail/asio_glue.hpp,
// task_base.hpp and loop_handle.hpp; the blocking pool's in blocking_pool.cpp: loop itself
// stays private)

boost::asio::io_context& io_of(loop& l) noexcept { return l.io(); }

std::uint32_t loop_generation_of(const loop& l) noexcept { return l.generation(); }

bool post_to_loop(const std::shared_ptr<loop_gate>& gate, std::function<void(bool)> job) {
  std::lock_guard lock(gate->mutex);
  loop* l = gate->open;
  if (l == nullptr) return false;
  boost::asio::post(l->io(), [l, job = std::move(job)]() mutable { job(l->accepting()); });
  l->wake_hook_locked();
  return true;
}

bool set_park_hook(park_hook* h) {
  loop* l = running_loop_or_null();
  return l != nullptr && l->set_park_hook(h);
}

std::shared_ptr<loop_gate> gate_of_running_loop() { return running_loop("this_loop()").gate(); }

bool gate_open(const loop_gate& gate) noexcept {
  std::lock_guard lock(const_cast<std::mutex&>(gate.mutex));
  return gate.open != nullptr;
}

}  // namespace baton::detail
