// SPDX-License-Identifier: BSL-1.0
// The client channel's completion queue and how an outgoing call is set up.
#include <baton/grpc/channel.hpp>

namespace baton::grpc {

namespace detail {

void prepare(::grpc::ClientContext& call, const call_options& opts) {
  inject(call, opts.timeout);
  for (const auto& [name, value] : opts.metadata) call.AddMetadata(name, value);
}

}  // namespace detail

channel::channel(std::shared_ptr<::grpc::Channel> ch) : channel_(std::move(ch)), poller_(cq_) {
  if (!channel_) throw runtime_error("baton: grpc channel: null ::grpc::Channel");
}

channel::~channel() {
  cq_.Shutdown();
  poller_.join();
}

}  // namespace baton::grpc
