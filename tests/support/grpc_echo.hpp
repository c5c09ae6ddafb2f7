// SPDX-License-Identifier: BSL-1.0
// For the grpc tests: the echo service's method names, messages, a server on a free loopback
// port with a channel to it for the length of one test body, each body run in both completion
// modes, a handler body that waits to be cancelled, handlers that count their runs or record how
// a client stream's reading ended, and the names the tests use.
#pragma once

#include <baton/errors.hpp>
#include <baton/event.hpp>
#include <baton/grpc/channel.hpp>
#include <baton/grpc/server.hpp>
#include <baton/grpc/status_error.hpp>
#include <baton/run.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <doctest/doctest.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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

/// A channel with a connection of its own. gRPC shares connections between channels to one
/// target (its global subchannel pool), so a channel made right after the server dropped a
/// connection can be handed that closing connection and fail with UNAVAILABLE.
inline std::shared_ptr<::grpc::Channel> connect_fresh(const baton::grpc::server& s) {
  ::grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return ::grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(s.port()),
                                     ::grpc::InsecureChannelCredentials(), args);
}

/// Registers handlers with setup(server&), starts a server on a free loopback port, runs
/// body(channel&, server&) (a callable returning a task), then shuts the server down and waits
/// for serve() to return; rethrows what body threw. Must run inside a task of a loop of one
/// thread when opts.poll_on_loop is set (it checks that the loop polls the queue).
template <class Setup, class Body>
baton::task<> with_server(Setup setup, Body body, baton::grpc::server_options opts = {}) {
  if (opts.addresses.empty()) opts.addresses = {"127.0.0.1:0"};
  const bool poll_on_loop = opts.poll_on_loop;
  baton::grpc::server srv(std::move(opts));
  setup(srv);
  srv.start();
  auto serving = baton::spawn(srv.serve());
  co_await baton::sleep(std::chrono::seconds(0));  // serve() starts: the body's calls see its mode
  CHECK(srv.polled_by_loop() == poll_on_loop);
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

/// Runs body(mode) (a callable returning a task) on a fresh loop of one thread twice: with the
/// server's completions handed to the loop by a routing thread, and with the loop thread as
/// gRPC's poller (server_options::poll_on_loop). mode holds a loopback address with port 0.
template <class Body>
void in_each_mode(Body body) {
  for (const bool poll_on_loop : {false, true}) {
    CAPTURE(poll_on_loop);
    baton::grpc::server_options mode;
    mode.addresses = {"127.0.0.1:0"};
    mode.poll_on_loop = poll_on_loop;
    baton::run(body(mode));
  }
}

/// A handler's body that waits, until it is cancelled, for an event nobody sets: park() says
/// when it started (entered) and when the cancellation reached it (cancelled), and rethrows.
struct parked {
  baton::event entered;
  baton::event cancelled;
  baton::event never;

  baton::task<> park() {
    entered.set();
    try {
      co_await never.wait();
    } catch (const baton::cancelled_error&) {
      cancelled.set();
      throw;
    }
  }
};

/// How `call` (a task of a call, a stream's finish(), check_health()) ended: OK, or the code of
/// the status_error it threw.
template <class Call>
baton::task<::grpc::StatusCode> status_of(Call call) {
  try {
    (void)co_await std::move(call);
  } catch (const baton::grpc::status_error& e) {
    co_return e.code();
  }
  co_return ::grpc::StatusCode::OK;
}

/// The first client metadata field named `name` of a server call, or "none".
inline std::string field_of(const ::grpc::ServerContext& call, const char* name) {
  auto it = call.client_metadata().find(name);
  return it == call.client_metadata().end() ? std::string("none")
                                            : std::string(it->second.data(), it->second.size());
}

/// A unary handler that holds its call until `release` is set (`entered` says it started):
/// what keeps a call in flight, and serve() running, while a test looks at something else.
struct held_call {
  baton::event entered;
  baton::event release;

  baton::task<Msg> operator()(Msg m) {
    entered.set();
    co_await release.wait();
    co_return m;
  }
};

/// A with_server() setup: unary_method's handler parks until it is cancelled (`p` says when).
inline auto parked_unary(parked& p) {
  return [&p](baton::grpc::server& s) {
    s.add_unary<Msg, Msg>(unary_method, [&p](Msg m) -> baton::task<Msg> {
      co_await p.park();
      co_return m;
    });
  };
}

/// Registers a unary echo that counts its runs in `ran`. By reference: g++ 12 may destroy a
/// lambda temporary that owns a shared_ptr twice inside a co_await expression
/// (docs/notes/004-gcc12-coroutine-temporaries.md).
inline auto counting_echo(int& ran) {
  return [&ran](baton::grpc::server& s) {
    s.add_unary<Msg, Msg>(unary_method, [&ran](Msg m) -> baton::task<Msg> {
      ++ran;
      co_return m;
    });
  };
}

/// How a client-streaming handler's reading ended (reading_handler records it).
struct stream_outcome {
  baton::event first;                            // the handler has read one message
  std::vector<std::string> texts;                // each message read, its text field, in order
  bool whole = false;                            // its reads ended as if the client had finished
  bool cut = false;                              // a read threw (status_error, or the cancellation)
  std::optional<::grpc::StatusCode> read_error;  // the status_error's code, when one was thrown
  baton::event done;
};

/// Registers a client-streaming handler that reads to the end and records how that went.
inline auto reading_handler(stream_outcome& seen) {
  return [&seen](baton::grpc::server& s) {
    s.add_client_streaming<Msg, Msg>(
        client_stream_method,
        [&seen](baton::grpc::server_stream<Msg, Msg>& in) -> baton::task<Msg> {
          try {
            while (auto m = co_await in.read()) {
              seen.texts.push_back(m->text());
              seen.first.set();
            }
          } catch (const baton::grpc::status_error& e) {
            seen.read_error = e.code();
            seen.cut = true;
            seen.done.set();
            throw;
          } catch (...) {
            seen.cut = true;
            seen.done.set();
            throw;
          }
          seen.whole = true;
          seen.done.set();
          co_return msg("all");
        });
  };
}

/// The names the grpc tests use: `using namespace baton_test::grpc_names;`.
namespace grpc_names {
using baton::task;
using baton::grpc::channel;
using baton::grpc::server;
using baton::grpc::server_options;
using baton::grpc::server_stream;
using baton::grpc::status_error;
using baton::grpc::unary_call;
using baton_test::bidi_method;
using baton_test::client_stream_method;
using baton_test::counting_echo;
using baton_test::field_of;
using baton_test::held_call;
using baton_test::in_each_mode;
using baton_test::msg;
using baton_test::Msg;
using baton_test::reading_handler;
using baton_test::server_stream_method;
using baton_test::status_of;
using baton_test::stream_outcome;
using baton_test::unary_method;
using baton_test::with_server;
using ::grpc::StatusCode;
using namespace std::chrono_literals;
}  // namespace grpc_names

}  // namespace baton_test
