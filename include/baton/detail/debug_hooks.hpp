// SPDX-License-Identifier: BSL-1.0
// The two debug-mode reports that start in headers (runtime/debug.cpp has the rest).
#pragma once

#include <typeinfo>

namespace baton::detail {

struct context_cell;

/// A task<T> (T named by `type`) is being destroyed before it ever ran: reported when the
/// calling thread's loop is in debug mode, or BATON_DEBUG=1 outside a loop. Cold path.
[[gnu::cold]] void report_never_awaited(const std::type_info& type) noexcept;

/// context::run() of c returns on a thread other than the one that entered c: reported like
/// report_never_awaited. Cold path.
[[gnu::cold]] void report_left_elsewhere(const context_cell* c) noexcept;

}  // namespace baton::detail
