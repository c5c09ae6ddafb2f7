// SPDX-License-Identifier: BSL-1.0
// Metadata and deadlines into and out of the current context.
#include <baton/grpc/call_context.hpp>

#include <grpc/support/time.h>
#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>

#include <algorithm>
#include <string_view>

namespace baton::grpc {

namespace {

using std::chrono::steady_clock;
using std::chrono::system_clock;

std::string_view view(::grpc::string_ref s) noexcept { return {s.data(), s.size()}; }

}  // namespace

context_var<std::optional<deadline_point>>& deadline_var() {
  static auto* var =
      new context_var<std::optional<deadline_point>>("baton.grpc.deadline", std::nullopt);
  return *var;
}

std::optional<deadline_point> current_deadline() { return deadline_var().get(); }

void call_tokens::reset() const {
  deadline_var().reset(deadline);
  trace_parent_var().reset(span);
  trace.reset();
}

call_tokens extract(const ::grpc::ServerContextBase& call) {
  baton::detail::trace_headers headers;
  for (const auto& [name, value] : call.client_metadata()) headers.add(view(name), view(value));
  trace_tokens trace = baton::detail::extract_headers(headers);
  auto span = start_span();

  std::optional<deadline_point> deadline;
  gpr_timespec raw = call.raw_deadline();
  if (gpr_time_cmp(raw, gpr_inf_future(raw.clock_type)) != 0) {
    // gRPC's deadline is on the system clock; the loop's timers run on the steady one.
    deadline = steady_clock::now() + std::chrono::duration_cast<steady_clock::duration>(
                                         call.deadline() - system_clock::now());
  }
  return {trace, span, deadline_var().set(deadline)};
}

void inject(::grpc::ClientContext& call, std::optional<steady_clock::duration> timeout) {
  baton::detail::trace_headers headers = baton::detail::current_headers();
  if (headers.traceparent) call.AddMetadata("traceparent", *headers.traceparent);
  if (headers.tracestate) call.AddMetadata("tracestate", *headers.tracestate);
  if (headers.baggage) call.AddMetadata("baggage", *headers.baggage);

  std::optional<deadline_point> deadline = current_deadline();
  if (timeout) {
    deadline_point own = steady_clock::now() + *timeout;
    deadline = deadline ? std::min(*deadline, own) : own;
  }
  if (deadline) {
    call.set_deadline(system_clock::now() + std::chrono::duration_cast<system_clock::duration>(
                                                *deadline - steady_clock::now()));
  }
}

}  // namespace baton::grpc
