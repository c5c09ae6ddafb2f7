// SPDX-License-Identifier: BSL-1.0
// Non-template parts of wait_for, task_group and shield (gather is all templates, in gather.hpp).

#include <baton/detail/awaitable_traits.hpp>
#include <baton/errors.hpp>
#include <baton/shield.hpp>
#include <baton/task_group.hpp>
#include <baton/wait_for.hpp>

namespace baton::detail {

struct timeout::shared final : timer_node {
  std::mutex mutex;
  std::atomic<int> refs{2};  // wait_for's, and the timers' until fired or taken off
  task_base* task = nullptr;
  loop* lp = nullptr;
  bool finished = false;    // wait_for is past its await: the fire must not cancel
  bool fired = false;       // the fire requested the cancellation
  bool ended = false;       // end() ran (wait_for's side)
  std::uint32_t entry = 0;  // the task's cancellation requests when wait_for began

  void release() noexcept {
    // acq_rel: the last owner sees the other's writes before deleting.
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  static void on_fire(timer_node* n) noexcept {
    auto* s = static_cast<shared*>(n);
    {
      std::lock_guard lock(s->mutex);
      if (!s->finished) {
        s->fired = true;
        cancel(s->task);  // the task is alive: wait_for has not finished
      }
    }
    s->release();
  }
};

timeout::timeout(task_base* t, std::chrono::steady_clock::duration d) : s_(new shared) {
  s_->task = t;
  s_->lp = t->owner_loop;
  s_->entry = cancelling(t);
  const auto now = std::chrono::steady_clock::now();
  s_->deadline = d >= std::chrono::steady_clock::time_point::max() - now
                     ? std::chrono::steady_clock::time_point::max()
                     : now + d;
  s_->fire = &shared::on_fire;
  add_timer(*s_->lp, s_);
}

timeout::~timeout() {
  if (!s_->ended) end();
  s_->release();
}

bool timeout::end() noexcept {
  bool fired = false;
  {
    std::lock_guard lock(s_->mutex);
    s_->finished = true;
    fired = s_->fired;
  }
  s_->ended = true;
  if (cancel_timer(*s_->lp, s_)) s_->release();  // taken off before firing: the timers' ref
  return fired && uncancel(s_->task, s_->entry) <= s_->entry;
}

}  // namespace baton::detail

// ---------------------------------------------------------------------------------------------
// task_group

namespace baton::detail {
namespace {

struct group_member : waiter {
  std::shared_ptr<group_state> group;
  task_base* child = nullptr;
};

void wake(std::atomic<task_base*>& slot) noexcept {
  // acq_rel: exactly one of the completion and the cancel hook takes the waiter.
  if (task_base* t = slot.exchange(nullptr, std::memory_order_acq_rel)) schedule(t);
}

void member_done(waiter* w) noexcept {
  std::unique_ptr<group_member> m(static_cast<group_member*>(w));
  group_state& g = *m->group;
  bool cancel_siblings = false;
  bool last = false;
  {
    std::lock_guard lock(g.mutex);
    // The group takes over the error (it reports it if nobody sees it through the group);
    // complete() has already classified it (cancelled) before waking us.
    if (std::exception_ptr e = retrieve_error(m->child); e && !m->child->cancelled()) {
      g.errors.push_back(e);
      g.failed_names.push_back(task_name(m->child));
      cancel_siblings = !std::exchange(g.failed, true);
    }
    g.running.erase(m->child);
    last = g.running.empty();
  }
  release_task(m->child);  // finished children are not kept
  if (cancel_siblings) g.cancel_children();
  if (last) wake(g.waiting);
}

}  // namespace

group_state::~group_state() {
  for (std::size_t i = seen; i < errors.size(); ++i) {  // failures nobody was handed
    report_unretrieved(loop_generation, unhandled_failure{failed_names[i], errors[i]});
  }
}

void group_state::check_accepting() {
  std::lock_guard lock(mutex);
  if (failed) {
    throw baton::runtime_error(
        "baton: task_group is shutting down after a child failed; "
        "it accepts no new tasks");
  }
  if (closed) {
    throw baton::runtime_error(
        "baton: task_group::wait() has returned; the group accepts no new tasks");
  }
}

void group_state::add(const std::shared_ptr<group_state>& g, task_base* child) {
  auto m = std::make_unique<group_member>();
  m->group = g;
  m->child = child;
  m->notify = &member_done;
  bool failed = false;
  {
    std::lock_guard lock(g->mutex);
    g->running.insert(child);
    retain_task(child);
    failed = g->failed;
  }
  if (failed) cancel(child);  // raced with a sibling's failure
  group_member* raw = m.release();
  if (!add_waiter(child, raw)) member_done(raw);  // finished already
}

void group_state::cancel_children() noexcept {
  std::vector<task_base*> snapshot;
  {
    std::lock_guard lock(mutex);
    snapshot.assign(running.begin(), running.end());
    for (task_base* c : snapshot) retain_task(c);
  }
  for (task_base* c : snapshot) {
    cancel(c);
    release_task(c);
  }
}

namespace {
void on_group_cancel(task_base*, void* g) noexcept { wake(static_cast<group_state*>(g)->waiting); }
constexpr await_kind group_wait_kind{"task_group", &on_group_cancel};
}  // namespace

bool group_wait_awaiter::suspend(std::coroutine_handle<> h) {
  std::lock_guard lock(g->mutex);
  if (g->running.empty()) return false;
  return arm(self, h, group_wait_kind, g, [this] {
    // release: the wake path that takes this task sees what it wrote before suspending.
    g->waiting.store(self, std::memory_order_release);
    return true;
  });
}

}  // namespace baton::detail

namespace baton {

task_group::task_group() : s_(std::make_shared<detail::group_state>()) {
  if (detail::loop* l = detail::running_loop_or_null()) {
    s_->loop_generation = detail::loop_generation_of(*l);
  }
}

task_group::~task_group() {
  bool running = false;
  {
    std::lock_guard lock(s_->mutex);
    running = !s_->running.empty();
  }
  if (running) s_->cancel_children();
}

task<void> task_group::wait() {
  detail::task_base* self = detail::running_task;
  {
    std::lock_guard lock(s_->mutex);
    if (s_->waiter != nullptr && s_->waiter != self) {
      throw baton::runtime_error("baton: task_group::wait() is already awaited by another task");
    }
    s_->waiter = self;
  }
  bool cancelled = false;
  for (;;) {
    {
      std::lock_guard lock(s_->mutex);
      if (s_->running.empty()) break;
    }
    try {
      co_await detail::group_wait_awaiter{s_.get()};
    } catch (const cancelled_error&) {
      cancelled = true;
      s_->cancel_children();
    }
  }
  std::exception_ptr first;
  {
    std::lock_guard lock(s_->mutex);
    s_->waiter = nullptr;
    if (!cancelled) {  // a cancelled wait hands no error out: they stay reportable
      s_->closed = true;
      s_->seen = s_->errors.size();
      if (!s_->errors.empty()) first = s_->errors.front();
    }
  }
  if (cancelled) throw cancelled_error();
  if (first) std::rethrow_exception(first);
}

std::vector<std::exception_ptr> task_group::errors() const {
  std::lock_guard lock(s_->mutex);
  s_->seen = s_->errors.size();
  return s_->errors;
}

}  // namespace baton

// ---------------------------------------------------------------------------------------------
// shield

namespace baton::detail {

void shield_node::release() noexcept {
  if (drop()) delete this;
}

void shield_node::on_done(waiter* w) noexcept {
  auto* n = static_cast<shield_node*>(w);
  if (n->claim()) schedule(n->waiting);
  n->release();
}

const await_kind shield_node::kind{"shield", &shield_node::on_cancel};

void shield_node::on_cancel(task_base*, void* self) noexcept {
  auto* n = static_cast<shield_node*>(self);
  if (n->claim()) schedule(n->waiting);
}

bool shield_suspend(task_base* self, task_base* target, shield_node* node,
                    std::coroutine_handle<> h) {
  node->notify = &shield_node::on_done;
  bool added = false;
  const bool suspended = arm(self, h, shield_node::kind, node, [&] {
    added = add_waiter(target, node);
    return added;
  });
  if (!added) node->release();  // the waiter list never got its reference
  return suspended;
}

}  // namespace baton::detail
