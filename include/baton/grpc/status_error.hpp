// SPDX-License-Identifier: BSL-1.0
// status_error: a gRPC call that ended with a status other than OK, as an exception.
#pragma once

// Contract:
//   A client call throws status_error when the server's status is not OK (DEADLINE_EXCEEDED
//   when the deadline passed, UNAVAILABLE when the server cannot be reached, ...); a server
//   handler throws one to end its call with that status. what() reads
//   `baton: grpc <method>: <CODE>: <message>` on the client, the message alone on a server.
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
  /// For a server handler: ends its call with (code, message).
  status_error(::grpc::StatusCode code, const std::string& message);
  /// For a client: what `method` returned.
  status_error(std::string_view method, const ::grpc::Status& status);

  ::grpc::StatusCode code() const noexcept { return code_; }
  /// The status message, without the `baton: grpc <method>:` prefix.
  const std::string& message() const noexcept { return message_; }
  ::grpc::Status status() const { return {code_, message_}; }

 private:
  ::grpc::StatusCode code_;
  std::string message_;
};

/// The code's name as in the gRPC spec: "DEADLINE_EXCEEDED", "CANCELLED", ...
std::string_view code_name(::grpc::StatusCode code) noexcept;

}  // namespace baton::grpc
