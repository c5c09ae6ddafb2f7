// SPDX-License-Identifier: BSL-1.0
// Metadata and deadlines into and out of the current context.
#include <baton/grpc/call_context.hpp>

#include <baton/detail/access.hpp>
#include <baton/errors.hpp>

#include <grpc/support/time.h>
#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace baton::grpc {

namespace {

using std::chrono::steady_clock;
using std::chrono::system_clock;

std::string_view view(::grpc::string_ref s) noexcept { return {s.data(), s.size()}; }

// A deadline further away than this is no deadline (about 31 years: far below the 292 years a
// steady_clock time_point holds, far above any real call's budget).
constexpr std::chrono::seconds max_deadline_ahead{1'000'000'000};

}  // namespace

context_var<std::optional<deadline_point>>& deadline_var() {
  static auto* var =
      new context_var<std::optional<deadline_point>>("baton.grpc.deadline", std::nullopt);
  return *var;
}

std::optional<deadline_point> current_deadline() { return deadline_var().get(); }

void call_tokens::reset() const {
  deadline_var().reset(deadline);
  trace.reset();
}

namespace {

/// The call's trace headers, as views into its metadata (which outlives them) or, for a
/// tracestate or baggage sent in several fields, into `joined`, which trace_headers joins.
/// gRPC keys are lowercase (it refuses any other), so they compare as they are.
baton::detail::trace_header_views trace_views(const ::grpc::ServerContextBase& call,
                                              baton::detail::trace_headers& joined) {
  baton::detail::trace_header_views views;
  bool repeated = false;
  for (const auto& [key, value] : call.client_metadata()) {
    const std::string_view name = view(key);
    if (name == "traceparent") {
      if (views.traceparent_count++ == 0) views.traceparent = view(value);
    } else if (name == "tracestate") {
      repeated |= views.tracestate.has_value();
      views.tracestate = view(value);
    } else if (name == "baggage") {
      repeated |= views.baggage.has_value();
      views.baggage = view(value);
    }
  }
  if (repeated) {
    for (const auto& [key, value] : call.client_metadata()) joined.add(view(key), view(value));
    views.tracestate = joined.tracestate;
    views.baggage = joined.baggage;
  }
  return views;
}

}  // namespace

call_tokens extract(const ::grpc::ServerContextBase& call) {
  baton::detail::trace_headers joined;
  // The handler's own span in the same set as the caller's trace (one set, not two).
  trace_tokens trace = baton::detail::extract_views(trace_views(call, joined), /*new_span=*/true);
  return {trace, deadline_var().set(detail::steady_deadline(call.raw_deadline()))};
}

namespace detail {

void fill(const ::grpc::ServerContextBase& call, std::optional<deadline_point> cap) {
  using baton::detail::access;
  using baton::detail::make_entry;
  baton::detail::trace_headers joined;
  baton::detail::trace_values v =
      baton::detail::parse_views(trace_views(call, joined), /*new_span=*/true);
  std::optional<deadline_point> deadline = steady_deadline(call.raw_deadline());
  if (cap && (!deadline || *cap < *deadline)) deadline = cap;
  baton::detail::slot entries[4];
  std::size_t n = 0;
  try {  // an entry owns what it boxes: drop the ones made if a later one cannot be
    entries[n] = make_entry<std::optional<trace_parent>>(access::key(trace_parent_var()), v.parent);
    ++n;
    entries[n] = make_entry<trace_state>(access::key(trace_state_var()), std::move(v.state));
    ++n;
    entries[n] = make_entry<baggage>(access::key(baggage_var()), std::move(v.bag));
    ++n;
    entries[n] = make_entry<std::optional<deadline_point>>(access::key(deadline_var()), deadline);
    ++n;
  } catch (...) {
    for (std::size_t i = 0; i < n; ++i) baton::detail::drop_entry(entries[i]);
    throw;
  }
  baton::detail::set_untracked(entries, n);  // takes the entries over, also when it throws
}

std::optional<deadline_point> steady_deadline(gpr_timespec raw) {
  if (gpr_time_cmp(raw, gpr_inf_future(raw.clock_type)) == 0) return std::nullopt;
  // One read of gRPC's clock and one of the steady clock the loop's timers run on.
  const gpr_timespec left = gpr_time_sub(raw, gpr_now(raw.clock_type));
  if (left.tv_sec <= -max_deadline_ahead.count()) return steady_clock::now();  // long past
  if (left.tv_sec >= max_deadline_ahead.count()) return std::nullopt;
  return steady_clock::now() + std::chrono::seconds(left.tv_sec) +
         std::chrono::nanoseconds(left.tv_nsec);
}

std::string printable_key(std::string_view key) {
  std::string out;
  for (const unsigned char c : key.substr(0, 64)) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    }
  }
  if (key.size() > 64) out += "...";
  return out;
}

namespace {

bool is_reserved_key(std::string_view key) {
  static constexpr std::string_view reserved[] = {
      "content-type",      "te",         "user-agent",      "host", "connection", "upgrade",
      "transfer-encoding", "keep-alive", "proxy-connection"};
  if (key.substr(0, 5) == "grpc-") return true;
  for (const std::string_view r : reserved) {
    if (key == r) return true;
  }
  return false;
}

}  // namespace

void check_metadata_field(std::string_view key, std::string_view value) {
  const auto refuse = [&](const char* why) {
    throw runtime_error("baton: grpc: metadata key '" + printable_key(key) + "' " + why);
  };
  if (key.empty()) refuse("is empty");
  for (const char c : key) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) {
      refuse("has a character other than a-z 0-9 - _ . (keys are lowercase)");
    }
  }
  if (is_reserved_key(key)) refuse("is reserved by gRPC or HTTP/2");
  const bool binary = key.size() > 4 && key.substr(key.size() - 4) == "-bin";
  if (binary) return;
  for (const unsigned char c : value) {
    if (c < 0x20 || c > 0x7e) {
      refuse(
          "has a value with a byte outside printable ASCII (a key ending in -bin takes any "
          "bytes)");
    }
  }
}

}  // namespace detail

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
