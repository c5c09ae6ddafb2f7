// SPDX-License-Identifier: BSL-1.0
// The client channel's completion queue and how an outgoing call is set up.
#include <baton/grpc/channel.hpp>

#include <map>

namespace baton::grpc {

namespace detail {

void prepare(::grpc::ClientContext& call, const call_options& opts,
             const channel_options& channel) {
  for (const auto& [name, value] : opts.metadata) check_metadata_field(name, value);
  inject(call, opts.timeout ? opts.timeout : channel.default_timeout);
  for (const auto& [name, value] : opts.metadata) call.AddMetadata(name, value);
  if (channel.before_call) channel.before_call(call);
}

void take_response_metadata(const ::grpc::ClientContext& call, response_metadata& out) {
  const auto copy = [](const std::multimap<::grpc::string_ref, ::grpc::string_ref>& from,
                       std::vector<std::pair<std::string, std::string>>& to) {
    to.clear();
    to.reserve(from.size());
    for (const auto& [key, value] : from) {
      to.emplace_back(std::string(key.data(), key.size()), std::string(value.data(), value.size()));
    }
  };
  copy(call.GetServerInitialMetadata(), out.initial);
  copy(call.GetServerTrailingMetadata(), out.trailing);
}

void report_call_end(const channel_options& channel, const std::string& method,
                     const ::grpc::Status& status, std::chrono::steady_clock::time_point started) {
  if (!channel.after_call) return;
  try {
    channel.after_call(method, status, std::chrono::steady_clock::now() - started);
  } catch (...) {
    // Dropped: the call's own outcome stands (channel.hpp's contract).
  }
}

::grpc::Status caller_cancelled() {
  return {::grpc::StatusCode::CANCELLED, "baton: the calling task was cancelled"};
}

}  // namespace detail

std::optional<std::string_view> response_metadata::find(std::string_view key) const {
  for (const auto* fields : {&initial, &trailing}) {
    for (const auto& [k, v] : *fields) {
      if (k == key) return std::string_view(v);
    }
  }
  return std::nullopt;
}

channel::channel(std::shared_ptr<::grpc::Channel> ch, channel_options options)
    : channel_(std::move(ch)), options_(std::move(options)) {
  if (!channel_) throw runtime_error("baton: grpc channel: null ::grpc::Channel");
  if (options_.default_timeout &&
      *options_.default_timeout <= std::chrono::steady_clock::duration::zero()) {
    throw runtime_error("baton: grpc channel: default_timeout must be positive");
  }
}

channel::~channel() {
  cq_.Shutdown();
  if (poller_) {
    poller_->join();  // once the queue is empty
  } else {
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {
    }
  }
}

::grpc::CompletionQueue& channel::queue() {
  ::grpc::CompletionQueue& q = detail::queue_for_calls(cq_);
  if (&q == &cq_) std::call_once(poller_started_, [this] { poller_.emplace(cq_); });
  return q;
}

::grpc::CompletionQueue& channel::stream_queue(std::shared_ptr<detail::queue_lease>& lease) {
  ::grpc::CompletionQueue& q = detail::queue_for_stream(cq_, lease);
  if (&q == &cq_) std::call_once(poller_started_, [this] { poller_.emplace(cq_); });
  return q;
}

}  // namespace baton::grpc
