// SPDX-License-Identifier: BSL-1.0
// Introspection: snapshots of the loop's live tasks.

#include <baton/introspection.hpp>

#include <baton/context.hpp>
#include <baton/detail/cancel.hpp>
#include <baton/errors.hpp>
#include <baton/task_handle.hpp>

#include "loop.hpp"
#include "var_registry.hpp"

namespace baton {
namespace {

const char* state_name(detail::task_status s) {
  switch (s) {
    case detail::task_status::created:
      return "created";
    case detail::task_status::scheduled:
      return "scheduled";
    case detail::task_status::running:
      return "running";
    case detail::task_status::suspended:
      return "suspended";
    case detail::task_status::done:
      return "done";
  }
  return "unknown";
}

task_info snapshot(detail::task_base* t, bool read_vars) {
  task_info i;
  i.id = t->id;
  i.name = detail::task_name(t);
  // Relaxed: a snapshot for display; it may be stale by the time it is read.
  const auto status = t->status.load(std::memory_order_relaxed);
  i.state = state_name(status);
  {
    detail::cancel_guard g(t);  // the hook is written under this lock
    if (t->hook.kind != nullptr) i.awaiting = t->hook.kind->what;
  }
  if (read_vars) {
    try {
      detail::cell_reader r(t->ctx());
      i.vars = detail::describe_context(r.root());
    } catch (const context_error&) {
      i.state = "running";  // entered on another thread right now
    }
  }
  return i;
}

}  // namespace

std::optional<task_info> current_task() {
  detail::task_base* const t = detail::running_task;
  if (t == nullptr) return std::nullopt;
  return snapshot(t, true);
}

std::vector<task_info> all_tasks() {
  detail::loop& l = detail::running_loop("all_tasks()");
  // Collect first, read after: the loop's lock must not be held while taking a task's cancel
  // lock (cancel() takes them in the other order).
  std::vector<detail::task_base*> live;
  l.for_each_live([&](detail::task_base* t) {
    detail::retain_task(t);
    live.push_back(t);
  });
  std::vector<task_info> out;
  out.reserve(live.size());
  for (detail::task_base* t : live) {
    out.push_back(snapshot(t, true));
    detail::release_task(t);
  }
  return out;
}

std::string dump_tasks() {
  std::string s;
  for (const task_info& i : all_tasks()) {
    s += "task " + std::to_string(i.id) + " '" + i.name + "' " + i.state;
    if (!i.awaiting.empty()) s += ", awaiting " + i.awaiting;
    s += "\n";
    for (const auto& [name, value] : i.vars) s += "    " + name + " = " + value + "\n";
  }
  return s;
}

}  // namespace baton
