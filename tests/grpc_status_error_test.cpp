// SPDX-License-Identifier: BSL-1.0
// status_error: the code, the message, and what() for clients and servers.
#include <baton/grpc/status_error.hpp>

#include <doctest/doctest.h>

#include <string>

using baton::grpc::status_error;
using ::grpc::StatusCode;

TEST_CASE("a client's status_error names the method, the code and the message") {
  status_error e("/demo.Users/Lookup", ::grpc::Status(StatusCode::DEADLINE_EXCEEDED, "too slow"));
  CHECK(std::string(e.what()) == "baton: grpc /demo.Users/Lookup: DEADLINE_EXCEEDED: too slow");
  CHECK(e.code() == StatusCode::DEADLINE_EXCEEDED);
  CHECK(e.message() == "too slow");
  CHECK(e.details().empty());
}

TEST_CASE("a status's binary details survive both constructors byte for byte") {
  const std::string details("\x08\x05\x00\xff rich", 9);
  status_error server_side(StatusCode::FAILED_PRECONDITION, "stale", details);
  CHECK(server_side.details() == details);
  CHECK(server_side.status().error_details() == details);
  status_error client_side("/demo.Notes/Put", server_side.status());
  CHECK(client_side.details() == details);
  CHECK(client_side.code() == StatusCode::FAILED_PRECONDITION);
}

TEST_CASE("a handler's status_error becomes the status it ends its call with") {
  status_error e(StatusCode::NOT_FOUND, "no such note");
  CHECK(std::string(e.what()) == "no such note");
  ::grpc::Status s = e.status();
  CHECK(s.error_code() == StatusCode::NOT_FOUND);
  CHECK(s.error_message() == "no such note");
}

TEST_CASE("every gRPC status code has its spec name") {
  CHECK(baton::grpc::code_name(StatusCode::OK) == "OK");
  CHECK(baton::grpc::code_name(StatusCode::CANCELLED) == "CANCELLED");
  CHECK(baton::grpc::code_name(StatusCode::UNAVAILABLE) == "UNAVAILABLE");
  CHECK(baton::grpc::code_name(StatusCode::UNAUTHENTICATED) == "UNAUTHENTICATED");
  CHECK(baton::grpc::code_name(static_cast<StatusCode>(99)) == "UNKNOWN_CODE");
}
