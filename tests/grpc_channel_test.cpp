// SPDX-License-Identifier: BSL-1.0
// channel: calls from tasks carry the caller's context out, cancelling the caller cancels the
// RPC, deadlines, unreachable servers, threaded loops and misuse of a client_stream.
#include <baton/grpc/channel.hpp>

#include <baton/context_var.hpp>
#include <baton/errors.hpp>
#include <baton/event.hpp>
#include <baton/grpc/call_context.hpp>
#include <baton/grpc/server.hpp>
#include <baton/run.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/trace_context.hpp>
#include <doctest/doctest.h>
#include <support/grpc_echo.hpp>
#include <support/run_test.hpp>
#include <support/settle.hpp>

#include <grpcpp/create_channel.h>
#include <grpcpp/support/channel_arguments.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace baton_test::grpc_names;
using baton_test::run_task;
using std::chrono::steady_clock;

TEST_CASE("cancelling the calling task cancels the RPC and the server's handler with it") {
  in_each_mode([](server_options mode) -> task<> {
    baton_test::parked handler;
    co_await with_server(
        baton_test::parked_unary(handler),
        [&](channel& ch, server&) -> task<> {
          auto caller = baton::spawn(ch.call<Msg>(unary_method, msg("x")));
          co_await handler.entered.wait();
          caller.cancel();
          CHECK_THROWS_AS((void)co_await caller, baton::cancelled_error);
          co_await handler.cancelled.wait();
        },
        mode);
  });
}

TEST_CASE("the caller's deadline crosses to the handler and ends the call when it passes") {
  in_each_mode([](server_options mode) -> task<> {
    std::optional<baton::grpc::deadline_point> handler_deadline;
    baton::event never;
    co_await with_server(
        [&](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [&](Msg m) -> task<Msg> {
            handler_deadline = baton::grpc::current_deadline();
            co_await never.wait();
            co_return m;
          });
        },
        [&](channel& ch, server&) -> task<> {
          auto mine = std::chrono::steady_clock::now() + 300ms;
          (void)baton::grpc::deadline_var().set(mine);
          baton::grpc::call_options opts;
          opts.timeout = 60s;  // looser than the context's: the context's wins
          try {
            (void)co_await ch.call<Msg>(unary_method, msg("x"), opts);
            FAIL("the call succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::DEADLINE_EXCEEDED);
          }
          if (handler_deadline) CHECK(*handler_deadline <= mine + 100ms);  // wire rounding
        },
        mode);
  });
}

TEST_CASE("a handler's own calls carry its trace and its deadline to the next service") {
  in_each_mode([](server_options mode) -> task<> {
    std::optional<baton::trace_parent> front_span, back_trace;
    std::optional<baton::grpc::deadline_point> front_deadline, back_deadline;
    steady_clock::time_point front_ran, back_ran;
    std::string back_baggage;
    // The back server always keeps its routing thread: in poller mode the loop polls the
    // front's queue, and the back's call starts must still wake it there.
    server_options routed{.addresses = {"127.0.0.1:0"}};
    server back(routed);
    back.add_unary<Msg, Msg>(unary_method, [&](Msg m) -> task<Msg> {
      back_trace = baton::current_trace();
      back_deadline = baton::grpc::current_deadline();
      back_ran = steady_clock::now();
      back_baggage = baton::current_baggage().to_string();
      co_return m;
    });
    back.start();
    auto back_serving = baton::spawn(back.serve());
    channel to_back(baton_test::connect(back));
    co_await with_server(
        [&](server& front) {
          front.add_unary<Msg, Msg>(unary_method, [&](Msg m) -> task<Msg> {
            front_span = baton::current_trace();
            front_deadline = baton::grpc::current_deadline();
            front_ran = steady_clock::now();
            co_return co_await to_back.call<Msg>(unary_method, m);
          });
        },
        [](channel& ch, server&) -> task<> {
          (void)baton::extract(
              std::vector<std::pair<std::string, std::string>>{{"baggage", "request_id=r-7"}});
          (void)baton::start_span();
          baton::grpc::call_options opts;
          opts.timeout = 30s;
          (void)co_await ch.call<Msg>(unary_method, msg("x"), opts);
        },
        mode);
    back.shutdown();
    co_await back_serving;
    REQUIRE(front_span);
    REQUIRE(back_trace);
    CHECK(back_trace->trace_id == front_span->trace_id);
    CHECK(back_trace->parent_id != front_span->parent_id);
    CHECK(back_baggage == "request_id=r-7");
    REQUIRE(front_deadline);
    REQUIRE(back_deadline);
    // grpc-timeout is relative: the back's deadline gains the time the call spent between the
    // two handlers, plus the wire's rounding (near 30 s, 100 ms units rounded up, and gRPC's
    // whole milliseconds).
    CHECK(*back_deadline <= *front_deadline + (back_ran - front_ran) + 102ms);
  });
}

TEST_CASE("a channel's default_timeout ends a call to a server that never answers") {
  in_each_mode([](server_options mode) -> task<> {
    baton_test::parked handler;
    co_await with_server(
        baton_test::parked_unary(handler),
        [&](channel&, server& srv) -> task<> {
          channel bounded(baton_test::connect(srv), {.default_timeout = 300ms});
          // No timeout of its own and no deadline in the context: the channel's applies.
          try {
            (void)co_await bounded.call<Msg>(unary_method, msg("x"));
            FAIL("the call succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::DEADLINE_EXCEEDED);
          }
          if (handler.entered.is_set()) co_await handler.cancelled.wait();
        },
        mode);
  });
}

TEST_CASE(
    "a call's own timeout, not the channel's default_timeout, is its budget when it sets one") {
  run_task([]() -> task<> {
    std::optional<baton::grpc::deadline_point> seen;
    co_await with_server(
        [&](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [&](Msg m) -> task<Msg> {
            seen = baton::grpc::current_deadline();
            co_return m;
          });
        },
        [&](channel&, server& srv) -> task<> {
          channel ch(baton_test::connect(srv), {.default_timeout = 1h});
          (void)co_await ch.call<Msg>(unary_method, msg("default"));
          REQUIRE(seen.has_value());  // the default gave a call without a timeout a deadline
          CHECK(*seen > steady_clock::now() + 30min);
          baton::grpc::call_options opts;
          opts.timeout = 60s;
          (void)co_await ch.call<Msg>(unary_method, msg("own"), opts);
          REQUIRE(seen.has_value());
          CHECK(*seen < steady_clock::now() + 30min);  // the call's minute, not the hour
        });
  });
}

namespace {

baton::context_var<std::string> tenant("tenant", "");

/// A channel to `s` that writes the caller's tenant var into every call as x-tenant.
baton::grpc::channel_options carrying_tenant() {
  baton::grpc::channel_options o;
  o.before_call = [](::grpc::ClientContext& call) {
    if (tenant.get().empty()) throw baton::runtime_error("no tenant in the caller's context");
    call.AddMetadata("x-tenant", tenant.get());
  };
  return o;
}

/// A server whose on_call reads x-tenant into the tenant var; unary_method answers with it.
void tenant_server(server& s, int& ran) {
  s.on_call([](const std::string&, const ::grpc::ServerContext& call) -> task<> {
    (void)tenant.set(field_of(call, "x-tenant"));
    co_return;
  });
  s.add_unary<Msg, Msg>(unary_method, [&ran](Msg m) -> task<Msg> {
    ++ran;
    co_return msg(tenant.get(), m.n());
  });
}

task<std::string> as_tenant(channel& ch, std::string who, int n) {
  (void)tenant.set(std::move(who));  // this task's context only
  co_return (co_await ch.call<Msg>(unary_method, msg("", n))).text();
}

}  // namespace

TEST_CASE("before_call writes a context var into each call; the server's on_call reads it back") {
  in_each_mode([](server_options mode) -> task<> {
    int ran = 0;
    co_await with_server(
        [&ran](server& s) { tenant_server(s, ran); },
        [&ran](channel&, server& s) -> task<> {
          channel ch(baton_test::connect(s), carrying_tenant());
          std::vector<baton::task_handle<std::string>> calls;
          for (int i = 0; i < 10; ++i) {
            calls.push_back(baton::spawn(as_tenant(ch, "tenant-" + std::to_string(i), i)));
          }
          for (int i = 0; i < 10; ++i) {
            CHECK(co_await calls[static_cast<std::size_t>(i)] == "tenant-" + std::to_string(i));
          }
          CHECK(ran == 10);
          // A caller with no tenant: before_call's exception is the caller's, no call is made.
          int refused = 0;
          try {
            (void)co_await ch.call<Msg>(unary_method, msg("", 0));
          } catch (const baton::runtime_error& e) {
            refused += std::string(e.what()).find("no tenant") != std::string::npos;
          }
          try {
            (void)co_await ch.open<Msg, Msg>(bidi_method);
          } catch (const baton::runtime_error& e) {
            refused += std::string(e.what()).find("no tenant") != std::string::npos;
          }
          CHECK(refused == 2);
          CHECK(ran == 10);
        },
        mode);
  });
}

TEST_CASE("a channel's default_timeout that is not positive is refused") {
  run_task([]() -> task<> {
    auto nowhere = ::grpc::CreateChannel("127.0.0.1:1", ::grpc::InsecureChannelCredentials());
    CHECK_THROWS_WITH_AS(channel(nowhere, {.default_timeout = 0s}),
                         doctest::Contains("default_timeout"), baton::runtime_error);
    co_return;
  });
}

TEST_CASE("a call to a port nobody listens on fails with UNAVAILABLE") {
  run_task([]() -> task<> {
    channel ch(::grpc::CreateChannel("127.0.0.1:1", ::grpc::InsecureChannelCredentials()));
    try {
      baton::grpc::call_options opts;
      opts.timeout = 30s;
      (void)co_await ch.call<Msg>(unary_method, msg("x"), opts);
      FAIL("the call succeeded");
    } catch (const status_error& e) {
      CHECK(e.code() == StatusCode::UNAVAILABLE);
      CHECK(std::string(e.what()).rfind("baton: grpc /baton.test.Echo/Unary: UNAVAILABLE", 0) == 0);
    }
  });
}

TEST_CASE("a reply over the channel's receive bound fails the call with RESOURCE_EXHAUSTED") {
  run_task([]() -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [](Msg m) -> task<Msg> {
            m.set_text(std::string(static_cast<std::size_t>(m.n()), 'r'));
            co_return m;
          });
        },
        [](channel&, server& srv) -> task<> {
          ::grpc::ChannelArguments args;
          args.SetMaxReceiveMessageSize(1024);
          channel bounded(::grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(srv.port()),
                                                      ::grpc::InsecureChannelCredentials(), args));
          CHECK((co_await bounded.call<Msg>(unary_method, msg("", 900))).text().size() == 900);
          try {
            (void)co_await bounded.call<Msg>(unary_method, msg("", 2000));
            FAIL("the call succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::RESOURCE_EXHAUSTED);
          }
        });
  });
}

TEST_CASE("the caller's context is its own again after the call, and its sets stay with it") {
  static baton::context_var<int> mine("mine", 0);
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [](Msg) -> task<Msg> {
            (void)mine.set(99);  // the handler's context only
            co_return msg("", mine.get());
          });
        },
        [](channel& ch, server&) -> task<> {
          (void)mine.set(5);
          Msg r = co_await ch.call<Msg>(unary_method, msg("x"));
          CHECK(r.n() == 99);
          CHECK(mine.get() == 5);
        },
        mode);
  });
}

TEST_CASE("a unary call's request may be gone before its task is awaited: call() took its bytes") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_unary<Msg, Msg>(unary_method,
                                [](Msg m) -> task<Msg> { co_return msg(m.text() + "!", m.n()); });
        },
        [](channel& ch, server&) -> task<> {
          std::optional<task<Msg>> pending;
          {
            const Msg request = msg(std::string(200, 'r'), 41);  // beyond any small-string buffer
            pending.emplace(ch.call<Msg>(unary_method, request));
          }  // the request is destroyed here, before the call starts
          Msg r = co_await std::move(*pending);
          CHECK(r.text() == std::string(200, 'r') + "!");
          CHECK(r.n() == 41);
        },
        mode);
  });
}

TEST_CASE("a hundred concurrent calls from a loop of four threads all get their replies") {
  baton::run_options opts;
  opts.threads = 4;
  run_task(
      []() -> task<> {
        co_await with_server(
            [](server& s) {
              s.add_unary<Msg, Msg>(unary_method,
                                    [](Msg m) -> task<Msg> { co_return msg("", m.n() * 3); });
            },
            [](channel& ch, server&) -> task<> {
              std::vector<baton::task_handle<Msg>> calls;
              for (int i = 0; i < 100; ++i) {
                calls.push_back(baton::spawn(ch.call<Msg>(unary_method, msg("", i))));
              }
              for (int i = 0; i < 100; ++i) {
                CHECK((co_await calls[static_cast<std::size_t>(i)]).n() == i * 3);
              }
            });
      },
      std::move(opts));
}

TEST_CASE("writing to a call the server has ended throws the call's status") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_bidi<Msg, Msg>(bidi_method, [](server_stream<Msg, Msg>&) -> task<> {
            throw status_error(StatusCode::FAILED_PRECONDITION, "not today");
            co_return;
          });
        },
        [](channel& ch, server&) -> task<> {
          auto call = co_await ch.open<Msg, Msg>(bidi_method);
          CHECK_FALSE(co_await call.read());  // the server's end has arrived
          try {
            co_await call.write(msg("x"));
            FAIL("the write succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::FAILED_PRECONDITION);
            CHECK(e.message() == "not today");
          }
        },
        mode);
  });
}

TEST_CASE("two reads pending on one client_stream, or a moved-from one, are baton errors") {
  in_each_mode([](server_options mode) -> task<> {
    baton::event release;
    co_await with_server(
        [&](server& s) {
          s.add_server_streaming<Msg, Msg>(server_stream_method,
                                           [&](Msg, server_stream<Msg, Msg>& out) -> task<> {
                                             co_await release.wait();
                                             co_await out.write(msg("late"));
                                           });
        },
        [&](channel& ch, server&) -> task<> {
          auto call = co_await ch.open<Msg, Msg>(server_stream_method);
          co_await call.write(msg("go"));
          co_await call.writes_done();
          auto first = baton::spawn(call.read());
          co_await baton_test::settle();
          CHECK_THROWS_WITH_AS((void)co_await call.read(), doctest::Contains("already pending"),
                               baton::runtime_error);
          release.set();
          auto r = co_await first;
          REQUIRE(r);
          CHECK(r->text() == "late");
          CHECK_FALSE(co_await call.read());
          co_await call.finish();
          auto moved = std::move(call);
          CHECK_THROWS_WITH_AS((void)co_await call.read(), doctest::Contains("moved from"),
                               baton::runtime_error);
        },
        mode);
  });
}

TEST_CASE("a client_stream dropped before finish() cancels its call on the server") {
  in_each_mode([](server_options mode) -> task<> {
    baton_test::parked handler;
    co_await with_server(
        [&](server& s) {
          s.add_bidi<Msg, Msg>(bidi_method, [&](server_stream<Msg, Msg>& io) -> task<> {
            (void)co_await io.read();
            co_await handler.park();
          });
        },
        [&](channel& ch, server&) -> task<> {
          {
            auto call = co_await ch.open<Msg, Msg>(bidi_method);
            co_await call.write(msg("hello"));
            co_await handler.entered.wait();
          }
          co_await handler.cancelled.wait();
        },
        mode);
  });
}

namespace {

/// What a channel's after_call saw of one call.
struct reported_call {
  std::string method;
  StatusCode code;
  std::string tenant;  // the tenant var in the caller's context as the hook ran
  steady_clock::duration ran;
};

/// A channel to `s` whose after_call appends to `log`.
baton::grpc::channel_options reporting_to(std::vector<reported_call>& log) {
  baton::grpc::channel_options o;
  o.after_call = [&log](const std::string& method, const ::grpc::Status& status,
                        steady_clock::duration ran) {
    log.push_back({method, status.error_code(), tenant.get(), ran});
  };
  return o;
}

/// As `who`, makes a unary call with n and says how it ended.
task<StatusCode> call_as(channel& ch, std::string who, int n) {
  (void)tenant.set(std::move(who));
  co_return co_await status_of(ch.call<Msg>(unary_method, msg("", n)));
}

}  // namespace

TEST_CASE("after_call reports each call once as it ends, in the caller's context") {
  in_each_mode([](server_options mode) -> task<> {
    baton_test::parked p;
    co_await with_server(
        [&p](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [&p](Msg m) -> task<Msg> {
            if (m.n() == 1) throw status_error(StatusCode::NOT_FOUND, "no such note");
            if (m.n() == 2) co_await baton::sleep(20ms);
            if (m.n() == 3) co_await p.park();
            co_return m;
          });
          s.add_bidi<Msg, Msg>(bidi_method, [](server_stream<Msg, Msg>& st) -> task<> {
            while (auto m = co_await st.read()) co_await st.write(*m);
          });
          s.add_server_streaming<Msg, Msg>(server_stream_method,
                                           [](Msg m, server_stream<Msg, Msg>& out) -> task<> {
                                             co_await out.write(m);
                                             throw status_error(StatusCode::ABORTED, "conflict");
                                           });
        },
        [&p](channel&, server& s) -> task<> {
          std::vector<reported_call> log;
          channel ch(baton_test::connect(s), reporting_to(log));
          CHECK(co_await call_as(ch, "ann", 2) == StatusCode::OK);
          CHECK(co_await call_as(ch, "bob", 1) == StatusCode::NOT_FOUND);
          auto doomed = baton::spawn(call_as(ch, "cid", 3));
          co_await p.entered.wait();
          doomed.cancel();
          CHECK_THROWS_AS((void)co_await doomed, baton::cancelled_error);
          (void)tenant.set("streamer");
          auto echo = co_await ch.open<Msg, Msg>(bidi_method);
          co_await echo.write(msg("a", 5));
          CHECK((co_await echo.read())->n() == 5);
          co_await echo.writes_done();
          CHECK(!co_await echo.read());
          co_await echo.finish();
          co_await echo.finish();  // learns nothing new: not reported again
          auto failing = co_await ch.open<Msg, Msg>(server_stream_method);
          co_await failing.write(msg("b", 6));
          co_await failing.writes_done();
          while (co_await failing.read()) {
          }
          CHECK(co_await status_of(failing.finish()) == StatusCode::ABORTED);
          REQUIRE(log.size() == 5);
          CHECK(log[0].method == unary_method);
          CHECK(log[0].code == StatusCode::OK);
          CHECK(log[0].tenant == "ann");
          CHECK(log[0].ran >= 20ms);  // the server's sleep is inside the call's time
          CHECK(log[1].code == StatusCode::NOT_FOUND);
          CHECK(log[1].tenant == "bob");
          CHECK(log[2].code == StatusCode::CANCELLED);
          CHECK(log[2].tenant == "cid");
          CHECK(log[3].method == bidi_method);
          CHECK(log[3].code == StatusCode::OK);
          CHECK(log[3].tenant == "streamer");
          CHECK(log[4].method == server_stream_method);
          CHECK(log[4].code == StatusCode::ABORTED);
          co_await p.cancelled.wait();
        },
        mode);
  });
}

TEST_CASE("an after_call hook that throws leaves the call's own outcome") {
  in_each_mode([](server_options mode) -> task<> {
    int ran = 0;
    co_await with_server(
        counting_echo(ran),
        [&ran](channel&, server& s) -> task<> {
          int reported = 0;
          baton::grpc::channel_options o;
          o.after_call = [&reported](const std::string&, const ::grpc::Status&,
                                     steady_clock::duration) {
            ++reported;
            throw std::runtime_error("a metrics sink that failed");
          };
          channel ch(baton_test::connect(s), o);
          CHECK((co_await ch.call<Msg>(unary_method, msg("x", 3))).n() == 3);
          CHECK(ran == 1);
          CHECK(reported == 1);
        },
        mode);
  });
}
