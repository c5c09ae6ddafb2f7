// SPDX-License-Identifier: BSL-1.0
// spawn(): start a task concurrently on the running loop; like asyncio.create_task.
#pragma once

// Contract:
//   spawn(t)            runs t concurrently in a COPY of the current context (taken now),
//                       without its inherit::never vars (context_var.hpp).
//   spawn(t, ctx)       runs t in ctx itself, every var (asyncio's Task(context=ctx));
//                       several tasks may share ctx: they never run at the same time, even on
//                       a threaded loop.
//   spawn(t, opts)      with a name and/or a context (task_options).
//   The task is scheduled, not started: it runs when the spawner next suspends (or on another
//   loop thread). The loop keeps it alive until it finishes, whatever happens to the handle.
//     Context:      a copy, so the child's sets never reach the parent or its siblings.
//     Exceptions:   runtime_error when called outside a running loop (no loop on this thread)
//                   or with an empty task; the task's own failure is kept in its handle.
//     Cancellation: independent of the spawner (use task_group for structured lifetimes).
//     Thread-safety: call from a loop thread (any task, or code a task calls).
//
// Example:
//   auto h = baton::spawn(handle_request(std::move(socket)), {.name = "request"});

#include <baton/context.hpp>
#include <baton/detail/task_base.hpp>
#include <baton/errors.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace baton {

struct task_options {
  std::string name = {};            // for introspection and error reports
  std::optional<context> ctx = {};  // run in this context itself instead of a copy
};

namespace detail {

/// A task state for t, named when `name` is set: in ctx (retained) when it is given; else in a
/// cell of its own holding `root` (retained here) when that is given, a copy of a context
/// without a cell for the copy; else in a copy of the current context.
template <class T>
task_state<T>* make_state(task<T>&& t, context_cell* ctx, task_name_ref name,
                          std::optional<map_node*> root = std::nullopt) {
  if (!t)
    throw baton::runtime_error(
        "baton: spawn() of an empty task (moved from, default-constructed or already "
        "awaited)");
  task_state<T>* const s = name ? new named_task_state<T>(std::move(name)) : new task_state<T>;
  try {
    if (ctx == nullptr && root) {
      retain(*root);
      s->root = *root;
    } else if (ctx == nullptr) {
      // An implicit hand-off: the never-vars stay behind (context_var's contract).
      if (const context_cell* cur = current_cell) s->root = capture_root(cur->root, hand_off::task);
    }
  } catch (...) {
    delete s;  // t still owns its frame
    throw;
  }
  auto h = access::release(t);  // nothing below throws
  if (ctx != nullptr) {
    retain(ctx);
    s->run_in(ctx);
  }
  s->resume_point = h;
  return s;
}

/// spawn(t, {.name = name, .ctx = from.copy()}) without the copy's separate cell: the task's
/// own cell starts with from's vars. For code that starts many tasks from one context (a gRPC
/// server starts each call from serve()'s).
template <class T>
task_handle<T> spawn_copy(task<T> t, const context& from, task_name_ref name) {
  loop& l = running_loop("spawn()");
  task_state<T>* s = nullptr;
  {
    const cell_reader r(access::cell(from));  // from's root stays put until make_state retains it
    s = make_state(std::move(t), nullptr, std::move(name), const_cast<map_node*>(r.root()));
  }
  auto h = access::adopt_handle<task_handle<T>>(s);
  start(l, s);
  return h;
}

}  // namespace detail

template <class T>
task_handle<T> spawn(task<T> t, task_options opts) {
  detail::loop& l = detail::running_loop("spawn()");
  detail::context_cell* const ctx = opts.ctx ? detail::access::cell(*opts.ctx) : nullptr;
  auto* s = detail::make_state(std::move(t), ctx, detail::make_task_name(std::move(opts.name)));
  auto h = detail::access::adopt_handle<task_handle<T>>(s);  // the handle's reference
  detail::start(l, s);                                       // the loop's reference
  return h;
}

template <class T>
task_handle<T> spawn(task<T> t) {
  return spawn(std::move(t), task_options{});
}

template <class T>
task_handle<T> spawn(task<T> t, context ctx) {
  return spawn(std::move(t), task_options{{}, std::move(ctx)});
}

/// spawn(f) with a coroutine function instead of the task it makes: one line saying so.
template <class F, class... Rest>
requires std::is_function_v<std::remove_pointer_t<std::remove_cvref_t<F>>>
auto spawn(F&&, Rest&&...) {
  static_assert(detail::dependent_false<F>,
                "baton: spawn(f) needs a task: call the coroutine function, spawn(f())");
}

}  // namespace baton
