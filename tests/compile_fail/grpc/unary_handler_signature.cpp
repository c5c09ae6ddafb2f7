// SPDX-License-Identifier: BSL-1.0
// add_unary with a handler that takes none of (Request), (Request, const ServerContext&) and
// (Request, unary_call&).
// expect: h(Request, const ::grpc::ServerContext&) or h(Request, baton::grpc::unary_call&)
#include <baton/grpc/server.hpp>

#include <google/protobuf/empty.pb.h>

#include <string>

using empty = google::protobuf::Empty;

void setup(baton::grpc::server& srv) {
  srv.add_unary<empty, empty>("/demo.Demo/Ping",
                              [](std::string) -> baton::task<empty> { co_return empty(); });
}
