// SPDX-License-Identifier: BSL-1.0
// The loop's Asio pieces, for templates that start Asio operations.
#pragma once

#include <baton/detail/task_base.hpp>

#include <boost/asio/io_context.hpp>

namespace baton::detail {

/// The io_context of loop l.
boost::asio::io_context& io_of(loop& l) noexcept;

}  // namespace baton::detail
