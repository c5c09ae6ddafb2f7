// SPDX-License-Identifier: BSL-1.0
// Debug mode: the monitor a loop in debug mode owns, and the reports headers start.

#include "debug.hpp"

#include <baton/detail/debug_hooks.hpp>
#include <baton/task_handle.hpp>

#include "loop.hpp"
#include "var_registry.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace baton::detail {
namespace {

bool debug_env() noexcept {
  const char* v = std::getenv("BATON_DEBUG");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

std::string milliseconds(std::chrono::nanoseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(d.count()) / 1e6);
  return buf;
}

void print(const debug_report& r) noexcept { std::fprintf(stderr, "%s\n", r.message.c_str()); }

/// Reports made where no debug-mode loop runs (BATON_DEBUG=1 only): to stderr.
void report_outside_loop(debug_report& r) noexcept {
  if (debug_env()) print(r);
}

/// Where a report from a header goes: the calling thread's debug-mode loop, else stderr when
/// BATON_DEBUG=1, else nowhere.
void dispatch(debug_report& r) noexcept {
  if (debug_monitor* m = current_debug_monitor()) {
    m->report(r);
  } else if (running_loop_or_null() == nullptr) {
    report_outside_loop(r);
  }
}

std::string running_task_name() {
  return running_task != nullptr ? task_name(running_task) : std::string();
}

}  // namespace

std::string type_name(const std::type_info& type) {
  int status = 0;
  char* name = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name != nullptr ? name : type.name();
  std::free(name);
  return out;
}

std::unique_ptr<debug_monitor> debug_monitor::make(const run_options& opts) {
  if (!opts.debug && !debug_env()) return nullptr;
  return std::unique_ptr<debug_monitor>(new debug_monitor(opts));
}

debug_monitor::debug_monitor(const run_options& opts)
    : slow_step_(opts.slow_step), vars_(opts.debug_vars), handler_(opts.debug_handler) {}

void debug_monitor::step(task_base* t, std::coroutine_handle<> frame) {
  using clock = std::chrono::steady_clock;
  const clock::time_point start = clock::now();
  frame.resume();
  const std::chrono::nanoseconds took = clock::now() - start;
  if (took <= slow_step_) return;
  debug_report r;
  r.what = debug_report::kind::slow_step;
  r.task = task_name(t);
  r.took = took;
  {
    cancel_guard g(t);  // the hook is written under this lock
    if (t->hook.kind != nullptr) r.awaiting = t->hook.kind->what;
  }
  if (!vars_.empty()) {
    // The task's context is still entered on this thread: read it where it is.
    cell_reader reader(t->ctx());
    for (auto& [name, value] : describe_context(reader.root())) {
      if (std::find(vars_.begin(), vars_.end(), name) != vars_.end()) {
        r.vars.emplace_back(std::move(name), std::move(value));
      }
    }
  }
  r.message = "baton debug: task '" + r.task + "' ran " + milliseconds(took) +
              " without suspending (slow_step " + milliseconds(slow_step_) + "); " +
              (r.awaiting.empty() ? std::string("finished") : "awaiting " + r.awaiting);
  for (const auto& [name, value] : r.vars) r.message += "; " + name + "=" + value;
  report(r);
}

void debug_monitor::report(debug_report& r) noexcept {
  std::lock_guard lock(mutex_);
  if (!handler_) return print(r);
  try {
    handler_(r);
  } catch (...) {
    print(r);  // a handler that fails still leaves the report somewhere
  }
}

debug_monitor* current_debug_monitor() noexcept {
  loop* l = running_loop_or_null();
  return l != nullptr ? l->debug() : nullptr;
}

void report_never_awaited(const std::type_info& type) noexcept {
  try {
    if (current_debug_monitor() == nullptr && !debug_env()) return;
    debug_report r;
    r.what = debug_report::kind::never_awaited;
    r.task = running_task_name();
    r.message = "baton debug: a task<" + type_name(type) +
                "> was destroyed without being awaited or spawned" +
                (r.task.empty() ? std::string() : " (in task '" + r.task + "')");
    dispatch(r);
  } catch (...) {  // out of memory while reporting: the report is lost, nothing else
  }
}

void report_left_elsewhere(const context_cell* c) noexcept {
  try {
    if (current_debug_monitor() == nullptr && !debug_env()) return;
    debug_report r;
    r.what = debug_report::kind::context_left_elsewhere;
    r.task = running_task_name();
    r.message = "baton debug: context " + std::to_string(c->id) +
                " was entered by context::run() on one thread and left on another (a fiber "
                "that moved while suspended inside run()?)" +
                (r.task.empty() ? std::string() : " (in task '" + r.task + "')");
    dispatch(r);
  } catch (...) {
  }
}

}  // namespace baton::detail
