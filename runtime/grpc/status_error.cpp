// SPDX-License-Identifier: BSL-1.0
// status_error's messages and the names of gRPC's status codes.
#include <baton/grpc/status_error.hpp>

#include <utility>

namespace baton::grpc {

status_error::status_error(::grpc::StatusCode code, const std::string& message, std::string details)
    : std::runtime_error(message), code_(code), message_(message), details_(std::move(details)) {}

status_error::status_error(std::string_view method, const ::grpc::Status& status)
    : std::runtime_error("baton: grpc " + std::string(method) + ": " +
                         std::string(code_name(status.error_code())) + ": " +
                         status.error_message()),
      code_(status.error_code()),
      message_(status.error_message()),
      details_(status.error_details()) {}

std::string_view code_name(::grpc::StatusCode code) noexcept {
  switch (code) {
    case ::grpc::StatusCode::OK:
      return "OK";
    case ::grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case ::grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case ::grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case ::grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case ::grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case ::grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case ::grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case ::grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case ::grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case ::grpc::StatusCode::ABORTED:
      return "ABORTED";
    case ::grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case ::grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case ::grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case ::grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case ::grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case ::grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN_CODE";
  }
}

}  // namespace baton::grpc
