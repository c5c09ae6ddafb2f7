// SPDX-License-Identifier: BSL-1.0
// The umbrella header: everything baton offers.
#pragma once

#include <baton/context.hpp>
#include <baton/context_var.hpp>
#include <baton/errors.hpp>
#include <baton/executor.hpp>
#include <baton/run.hpp>
#include <baton/debug.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>
#include <baton/token.hpp>
#include <baton/use_task.hpp>
#include <baton/asio_awaitable.hpp>
#include <baton/wait_for.hpp>
#include <baton/task_group.hpp>
#include <baton/shield.hpp>
#include <baton/gather.hpp>
#include <baton/introspection.hpp>
#include <baton/to_thread.hpp>
#include <baton/bind_context.hpp>
#include <baton/context_executor.hpp>
#include <baton/loop_handle.hpp>
#include <baton/fiber.hpp>
#include <baton/event.hpp>
#include <baton/lock.hpp>
#include <baton/semaphore.hpp>
#include <baton/condition.hpp>
#include <baton/queue.hpp>
#include <baton/trace_context.hpp>
