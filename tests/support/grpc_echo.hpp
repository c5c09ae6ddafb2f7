// SPDX-License-Identifier: BSL-1.0
// For the grpc tests: the echo service's method names, messages, and a server on a free
// loopback port with a channel to it for the length of one test body.
#pragma once

#include <baton/grpc/channel.hpp>
#include <baton/grpc/server.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "echo.pb.h"

namespace baton_test {

using baton::test::Msg;

inline constexpr const char* unary_method = "/baton.test.Echo/Unary";
inline constexpr const char* server_stream_method = "/baton.test.Echo/ServerStream";
inline constexpr const char* client_stream_method = "/baton.test.Echo/ClientStream";
inline constexpr const char* bidi_method = "/baton.test.Echo/Bidi";

inline Msg msg(std::string text, int n = 0) {
  Msg m;
  m.set_text(std::move(text));
  m.set_n(n);
  return m;
}

inline std::shared_ptr<::grpc::Channel> connect(const baton::grpc::server& s) {
  return ::grpc::CreateChannel("127.0.0.1:" + std::to_string(s.port()),
                               ::grpc::InsecureChannelCredentials());
}

/// Registers handlers with setup(server&), starts a server on a free loopback port, runs
/// body(channel&, server&) (a callable returning a task), then shuts the server down and waits
/// for serve() to return; rethrows what body threw. Must run inside a task.
template <class Setup, class Body>
baton::task<> with_server(Setup setup, Body body, baton::grpc::server_options opts = {}) {
  if (opts.addresses.empty()) opts.addresses = {"127.0.0.1:0"};
  baton::grpc::server srv(std::move(opts));
  setup(srv);
  srv.start();
  auto serving = baton::spawn(srv.serve());
  std::exception_ptr failure;
  {
    baton::grpc::channel ch(connect(srv));
    try {
      co_await body(ch, srv);
    } catch (...) {
      failure = std::current_exception();
    }
  }
  srv.shutdown();
  co_await serving;
  if (failure) std::rethrow_exception(failure);
}

}  // namespace baton_test
