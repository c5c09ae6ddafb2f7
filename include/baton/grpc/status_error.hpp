// SPDX-License-Identifier: BSL-1.0
// status_error: a gRPC call that ended with a status other than OK, as an exception.
#pragma once

// Contract:
//   A client call throws status_error when the server's status is not OK (DEADLINE_EXCEEDED
//   when the deadline passed, UNAVAILABLE when the server cannot be reached, ...); a server
//   handler throws one to end its call with that status. what() reads
//   `baton: grpc <method>: <CODE>: <message>` on the client, the message alone on a server.
//   details() is the status's binary details (gRPC's grpc-status-details-bin trailer, by
//   convention a serialized google.rpc.Status): what a handler's status_error carries reaches
//   the client's status_error as the same bytes; empty when the status has none. On the
//   client they count against the channel's metadata bound like any trailer.
//   Thread-safety: a plain value.
//
// Example:
//   try {
//     auto reply = co_await users.call<lookup_reply>("/dir.Users/Lookup", request);
//   } catch (const baton::grpc::status_error& e) {
//     if (e.code() == ::grpc::StatusCode::NOT_FOUND) co_return std::nullopt;
//     throw;
//   }

#include <grpcpp/support/status.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace baton::grpc {

/// A gRPC status other than OK.
class status_error : public std::runtime_error {
 public:
  /// For a server handler: ends its call with (code, message) and the binary details, if any.
  status_error(::grpc::StatusCode code, const std::string& message, std::string details = {});
  /// For a client: what `method` returned.
  status_error(std::string_view method, const ::grpc::Status& status);

  ::grpc::StatusCode code() const noexcept { return code_; }
  /// The status message, without the `baton: grpc <method>:` prefix.
  const std::string& message() const noexcept { return message_; }
  /// The status's binary details; empty when it has none.
  const std::string& details() const noexcept { return details_; }
  ::grpc::Status status() const { return {code_, message_, details_}; }

 private:
  ::grpc::StatusCode code_;
  std::string message_;
  std::string details_;
};

/// The code's name as in the gRPC spec: "DEADLINE_EXCEEDED", "CANCELLED", ...
std::string_view code_name(::grpc::StatusCode code) noexcept;

}  // namespace baton::grpc
