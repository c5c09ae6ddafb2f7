// SPDX-License-Identifier: BSL-1.0
// The loop's Asio pieces for header templates.

#include <baton/detail/asio_glue.hpp>
#include <baton/loop_handle.hpp>
#include <baton/to_thread.hpp>

#include <boost/asio/post.hpp>

#include "loop.hpp"

namespace baton::detail {

boost::asio::io_context& io_of(loop& l) noexcept { return l.io(); }

std::uint32_t loop_generation_of(const loop& l) noexcept { return l.generation(); }

}  // namespace baton::detail

namespace baton::detail {

boost::asio::thread_pool& blocking_pool_of(loop& l) { return l.blocking_pool(); }

}  // namespace baton::detail

namespace baton::detail {

bool post_to_loop(const std::shared_ptr<loop_gate>& gate, std::function<void(bool)> job) {
  std::lock_guard lock(gate->mutex);
  loop* l = gate->open;
  if (l == nullptr) return false;
  boost::asio::post(l->io(), [l, job = std::move(job)]() mutable { job(l->accepting()); });
  return true;
}

std::shared_ptr<loop_gate> gate_of_running_loop() { return running_loop("this_loop()").gate(); }

bool gate_open(const loop_gate& gate) noexcept {
  std::lock_guard lock(const_cast<std::mutex&>(gate.mutex));
  return gate.open != nullptr;
}

}  // namespace baton::detail
