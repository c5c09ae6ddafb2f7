// SPDX-License-Identifier: BSL-1.0
// The context that crosses a gRPC call: trace, baggage and deadline, in and out of metadata.
#pragma once

// Contract:
//   deadline_var()     the current request's deadline (steady clock), nullopt when it has none.
//                      baton::grpc::server sets it from the call's deadline in each handler's
//                      context; a service may set it at its own edge (an HTTP request's budget).
//   extract(call)      fills the current context from a server call: traceparent, tracestate
//                      and baggage by baton::extract()'s rules (invalid or absent headers leave
//                      the vars nullopt / empty), the trace var holding the handler's own span,
//                      as start_span() would leave it (a child of the caller's, or a new trace),
//                      then the call's deadline into deadline_var() (nullopt when the call has
//                      none or one over 31 years away). Returns the tokens that undo it.
//   inject(call, t)    writes the current context into an outgoing call before it starts:
//                      traceparent (the current span becomes the callee's parent), tracestate
//                      and baggage as baton::inject() writes them, and the deadline: the earlier
//                      of current_deadline() and now + t (t absent: the context's alone).
// Bounds: what extract() keeps is never larger than the metadata it reads (baggage at most
// 8192 bytes and 64 members, tracestate at most 32 members, by baton/trace_context.hpp);
// baton::grpc::server caps the metadata it accepts per call at server_options's
// max_metadata_bytes (16 KiB unless set), so a call's context holds at most that much.
// Thread-safety: act on the calling thread's current context; `call` belongs to the caller.
//
// Example (the server and channel do both for you; this is for raw gRPC code):
//   auto tokens = baton::grpc::extract(server_context);  // handler side
//   ::grpc::ClientContext out;
//   baton::grpc::inject(out, std::chrono::milliseconds(200));  // before starting the call

#include <baton/context_var.hpp>
#include <baton/token.hpp>
#include <baton/trace_context.hpp>

#include <grpc/support/time.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace grpc {
class ClientContext;
class ServerContextBase;
}  // namespace grpc

namespace baton::grpc {

using deadline_point = std::chrono::steady_clock::time_point;

/// The var itself. Process-wide, never destroyed.
context_var<std::optional<deadline_point>>& deadline_var();
/// The current context's deadline; nullopt when there is none.
std::optional<deadline_point> current_deadline();

/// What extract() set; reset() restores the four vars, in reverse order. trace.parent_token
/// undoes the set of the handler's span (the only set of the trace var).
struct call_tokens {
  trace_tokens trace;
  token<std::optional<deadline_point>> deadline;

  void reset() const;
};

call_tokens extract(const ::grpc::ServerContextBase& call);
void inject(::grpc::ClientContext& call,
            std::optional<std::chrono::steady_clock::duration> timeout = std::nullopt);

namespace detail {
/// A gRPC deadline on the steady clock: the time left on gRPC's own clock from now. nullopt for
/// none (infinite) or one over 10^9 s (31 years) away, which a hostile grpc-timeout can ask for
/// and a nanosecond time_point cannot hold; a long-past one is now (expired).
std::optional<deadline_point> steady_deadline(gpr_timespec deadline);
/// What extract() sets, as one change with no tokens (the server's fill of a call's fresh
/// context, which nothing resets); the deadline is the earlier of the call's and `cap` (the
/// server's call_time_limit) when one is given.
void fill(const ::grpc::ServerContextBase& call, std::optional<deadline_point> cap = std::nullopt);
/// Refuses (baton::runtime_error naming the key) a metadata field gRPC would refuse, which
/// would make it abort the process when the field goes out, or that gRPC and HTTP/2 keep for
/// themselves: a key that is empty, holds anything but a-z 0-9 - _ ., or is reserved (grpc-*,
/// content-type, te, user-agent and HTTP/1's connection fields); a value with a byte outside
/// printable ASCII (0x20-0x7e) under a key that does not end in -bin (binary ones, which gRPC
/// base64-encodes, take any bytes). For fields a caller or a handler adds.
void check_metadata_field(std::string_view key, std::string_view value);
/// A key as an error message may show it: at most 64 bytes, each byte outside printable ASCII
/// as \xNN (a key may hold what a client sent).
std::string printable_key(std::string_view key);
}  // namespace detail

}  // namespace baton::grpc
