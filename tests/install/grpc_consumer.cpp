// SPDX-License-Identifier: BSL-1.0
// The install test's baton_grpc consumer: the installed headers compile and libbaton_grpc links.
#include <baton/baton.hpp>
#include <baton/grpc/call_context.hpp>
#include <baton/grpc/channel.hpp>
#include <baton/grpc/server.hpp>
#include <baton/grpc/status_error.hpp>

#include <grpcpp/client_context.h>

#include <chrono>
#include <cstdio>

int main() {
  using namespace std::chrono_literals;
  return baton::run([]() -> baton::task<int> {
    baton::grpc::server unused({.addresses = {"127.0.0.1:0"}});
    (void)baton::grpc::deadline_var().set(std::chrono::steady_clock::now() + 1s);
    ::grpc::ClientContext call;
    baton::grpc::inject(call, 10s);  // the context's second is the tighter
    bool tight = call.deadline() <= std::chrono::system_clock::now() + 1s;
    baton::grpc::status_error e(::grpc::StatusCode::NOT_FOUND, "no such note");
    bool coded = baton::grpc::code_name(e.code()) == "NOT_FOUND";
    std::puts(tight && coded ? "baton_grpc consumer: ok" : "baton_grpc consumer: WRONG");
    co_return tight&& coded ? 0 : 1;
  }());
}
