// SPDX-License-Identifier: BSL-1.0
// current_executor(): the running loop's Asio executor.
#pragma once

// Contract: returns the executor of the loop running on this thread (an io_context executor),
// for constructing Asio I/O objects (sockets, timers, resolvers) that tasks then await with
// use_task. Throws runtime_error outside a running loop.
// Thread-safety: call from a loop thread; the executor itself is as thread-safe as Asio's.
//
// Example:
//   boost::asio::ip::tcp::socket s(baton::current_executor());

#include <baton/detail/asio_glue.hpp>

namespace baton {

inline boost::asio::io_context::executor_type current_executor() {
  return detail::io_of(detail::running_loop("current_executor()")).get_executor();
}

}  // namespace baton
