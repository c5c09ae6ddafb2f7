// SPDX-License-Identifier: BSL-1.0
// add_unary with a handler that takes neither (Request) nor (Request, const ServerContext&).
// expect: the handler must be callable as h(Request) or h(Request, const ::grpc::ServerContext&)
#include <baton/grpc/server.hpp>

#include <google/protobuf/empty.pb.h>

#include <string>

using empty = google::protobuf::Empty;

void setup(baton::grpc::server& srv) {
  srv.add_unary<empty, empty>("/demo.Demo/Ping",
                              [](std::string) -> baton::task<empty> { co_return empty(); });
}
