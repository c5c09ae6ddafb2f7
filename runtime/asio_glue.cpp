// SPDX-License-Identifier: BSL-1.0
// The loop's Asio pieces for header templates.

#include <baton/detail/asio_glue.hpp>

#include "loop.hpp"

namespace baton::detail {

boost::asio::io_context& io_of(loop& l) noexcept { return l.io(); }

}  // namespace baton::detail
