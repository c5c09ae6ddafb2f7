// SPDX-License-Identifier: BSL-1.0
// server: each RPC kind as a baton task, call endings, cancellation by the client, the deadline
// and shutdown, misuse, and a loop that polls the server's queue (poll_on_loop).
#include <baton/grpc/server.hpp>

#include <baton/context_var.hpp>
#include <baton/errors.hpp>
#include <baton/event.hpp>
#include <baton/executor.hpp>
#include <baton/grpc/call_context.hpp>
#include <baton/grpc/channel.hpp>
#include <baton/loop_handle.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/to_thread.hpp>
#include <baton/trace_context.hpp>
#include <baton/use_task.hpp>
#include <baton/wait_for.hpp>
#include <doctest/doctest.h>
#include <support/grpc_echo.hpp>
#include <support/run_test.hpp>
#include <support/settle.hpp>

#include "echo.grpc.pb.h"
#include "grpc/server_seam.hpp"

#include <google/protobuf/empty.pb.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace baton_test::grpc_names;
using baton_test::run_task;

namespace {

/// A unary handler that waits until it is cancelled (baton_test::parked says when).
struct parked_handler : baton_test::parked {
  task<Msg> operator()(Msg) {
    co_await park();
    co_return Msg();
  }
};

}  // namespace

TEST_CASE("a unary handler's reply reaches the caller") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_unary<Msg, Msg>(
              unary_method, [](Msg m) -> task<Msg> { co_return msg(m.text() + "!", m.n() + 1); });
        },
        [](channel& ch, server&) -> task<> {
          Msg r = co_await ch.call<Msg>(unary_method, msg("hi", 41));
          CHECK(r.text() == "hi!");
          CHECK(r.n() == 42);
        },
        mode);
  });
}

TEST_CASE("a unary handler that takes its ServerContext sees the caller's metadata and peer") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_unary<Msg, Msg>(
              unary_method, [](Msg m, const ::grpc::ServerContext& call) -> task<Msg> {
                const auto& fields = call.client_metadata();
                auto user = fields.find("x-user");
                std::string seen = user == fields.end()
                                       ? "none"
                                       : std::string(user->second.data(), user->second.size());
                co_return msg(seen + "@" + call.peer(), m.n());
              });
        },
        [](channel& ch, server&) -> task<> {
          baton::grpc::call_options opts;
          opts.metadata.emplace_back("x-user", "ada");
          Msg with = co_await ch.call<Msg>(unary_method, msg("a", 1), opts);
          CHECK(with.text().rfind("ada@ipv4:127.0.0.1:", 0) == 0);
          CHECK(with.n() == 1);
          Msg without = co_await ch.call<Msg>(unary_method, msg("b", 2));
          CHECK(without.text().rfind("none@", 0) == 0);
        },
        mode);
  });
}

TEST_CASE("a unary handler refuses a call by its metadata: the caller gets the handler's status") {
  in_each_mode([](server_options mode) -> task<> {
    int served = 0;
    co_await with_server(
        [&served](server& s) {
          s.add_unary<Msg, Msg>(
              unary_method, [&served](Msg m, const ::grpc::ServerContext& call) -> task<Msg> {
                auto token = call.client_metadata().find("authorization");
                if (token == call.client_metadata().end() || token->second != "Bearer right") {
                  throw status_error(StatusCode::UNAUTHENTICATED, "no valid token");
                }
                ++served;
                co_return m;
              });
        },
        [&served](channel& ch, server&) -> task<> {
          baton::grpc::call_options wrong;
          wrong.metadata.emplace_back("authorization", "Bearer wrong");
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("x"), wrong)) ==
                StatusCode::UNAUTHENTICATED);
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("x"))) ==
                StatusCode::UNAUTHENTICATED);
          CHECK(served == 0);
          baton::grpc::call_options right;
          right.metadata.emplace_back("authorization", "Bearer right");
          CHECK((co_await ch.call<Msg>(unary_method, msg("y", 7), right)).n() == 7);
          CHECK(served == 1);
        },
        mode);
  });
}

TEST_CASE("a server-streaming handler's writes arrive in order and then the stream ends") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_server_streaming<Msg, Msg>(server_stream_method,
                                           [](Msg m, server_stream<Msg, Msg>& out) -> task<> {
                                             for (int i = 0; i < m.n(); ++i)
                                               co_await out.write(msg(m.text(), i));
                                           });
        },
        [](channel& ch, server&) -> task<> {
          auto call = co_await ch.open<Msg, Msg>(server_stream_method);
          co_await call.write(msg("x", 5));
          co_await call.writes_done();
          std::vector<int> seen;
          while (auto r = co_await call.read()) seen.push_back(r->n());
          co_await call.finish();
          CHECK(seen == std::vector<int>{0, 1, 2, 3, 4});
        },
        mode);
  });
}

TEST_CASE("a client-streaming handler reads every request, then its reply ends the call") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_client_streaming<Msg, Msg>(client_stream_method,
                                           [](server_stream<Msg, Msg>& in) -> task<Msg> {
                                             int sum = 0;
                                             while (auto m = co_await in.read()) sum += m->n();
                                             co_return msg("sum", sum);
                                           });
        },
        [](channel& ch, server&) -> task<> {
          auto call = co_await ch.open<Msg, Msg>(client_stream_method);
          for (int i = 1; i <= 10; ++i) co_await call.write(msg("n", i));
          co_await call.writes_done();
          auto r = co_await call.read();
          REQUIRE(r);
          CHECK(r->n() == 55);
          CHECK_FALSE(co_await call.read());
          co_await call.finish();
        },
        mode);
  });
}

TEST_CASE("a client stream's messages of no bytes and of many slices each read as one message") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_client_streaming<Msg, Msg>(client_stream_method,
                                           [](server_stream<Msg, Msg>& in) -> task<Msg> {
                                             int count = 0;
                                             std::size_t bytes = 0;
                                             while (auto m = co_await in.read()) {
                                               ++count;
                                               bytes += m->text().size();
                                             }
                                             co_return msg(std::to_string(bytes), count);
                                           });
        },
        [](channel& ch, server&) -> task<> {
          auto call = co_await ch.open<Msg, Msg>(client_stream_method);
          co_await call.write(Msg());                           // serializes to no bytes at all
          co_await call.write(msg(std::string(300'000, 'x')));  // arrives in several slices
          co_await call.write(Msg());
          co_await call.writes_done();
          auto r = co_await call.read();
          REQUIRE(r);
          CHECK(r->n() == 3);
          CHECK(r->text() == "300000");
          co_await call.finish();
        },
        mode);
  });
}

TEST_CASE("a bidi handler answers each request before the next one is sent") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_bidi<Msg, Msg>(bidi_method, [](server_stream<Msg, Msg>& io) -> task<> {
            while (auto m = co_await io.read()) co_await io.write(msg(m->text(), m->n() * 2));
          });
        },
        [](channel& ch, server&) -> task<> {
          auto call = co_await ch.open<Msg, Msg>(bidi_method);
          for (int i = 0; i < 5; ++i) {
            co_await call.write(msg("q", i));
            auto r = co_await call.read();
            REQUIRE(r);
            CHECK(r->n() == i * 2);
          }
          co_await call.writes_done();
          CHECK_FALSE(co_await call.read());
          co_await call.finish();
        },
        mode);
  });
}

TEST_CASE("a method nobody registered ends with UNIMPLEMENTED") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server([](server&) {},
                         [](channel& ch, server&) -> task<> {
                           CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("x"))) ==
                                 StatusCode::UNIMPLEMENTED);
                         },
                         mode);
  });
}

TEST_CASE("a unary request that is not the method's message ends with INVALID_ARGUMENT") {
  in_each_mode([](server_options mode) -> task<> {
    int ran = 0;
    co_await with_server(
        counting_echo(ran),
        [&ran](channel& ch, server&) -> task<> {
          // A field tag with no field number, then a truncated varint: no Msg parses from it.
          const char junk[] = {'\x00', '\xff', '\xff', '\xff'};
          ::grpc::Slice slice(junk, sizeof junk);
          ::grpc::ByteBuffer bytes(&slice, 1);
          try {
            (void)co_await ch.call<::grpc::ByteBuffer>(unary_method, bytes);
            FAIL("the call succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::INVALID_ARGUMENT);
            CHECK(e.message().find("not a valid") != std::string::npos);
          }
          CHECK(ran == 0);
          // The server goes on serving.
          CHECK((co_await ch.call<Msg>(unary_method, msg("after", 1))).n() == 1);
          CHECK(ran == 1);
        },
        mode);
  });
}

TEST_CASE("a unary method called with no request message fails without running its handler") {
  in_each_mode([](server_options mode) -> task<> {
    int ran = 0;
    co_await with_server(
        counting_echo(ran),
        [&ran](channel& ch, server&) -> task<> {
          auto call = co_await ch.open<Msg, Msg>(unary_method);
          co_await call.writes_done();
          while (co_await call.read()) {
          }
          CHECK(co_await status_of(call.finish()) != StatusCode::OK);
          CHECK(ran == 0);
        },
        mode);
  });
}

TEST_CASE("a request over max_message_bytes ends its call with RESOURCE_EXHAUSTED, unseen") {
  in_each_mode([](server_options mode) -> task<> {
    mode.max_message_bytes = 1024;
    int ran = 0;
    co_await with_server(
        counting_echo(ran),
        [&ran](channel& ch, server&) -> task<> {
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg(std::string(2000, 'x')))) ==
                StatusCode::RESOURCE_EXHAUSTED);
          CHECK(ran == 0);
          // With a routing thread the call's end usually reaches the queue's thread before its
          // task has started: the task is cancelled unstarted, and the call must still end, or
          // serve() would never return at the end of this test.
          // One within the bound is served, on the same channel.
          CHECK((co_await ch.call<Msg>(unary_method, msg(std::string(900, 'x'), 2))).n() == 2);
          CHECK(ran == 1);
        },
        mode);
  });
}

TEST_CASE("an oversized message in a client stream ends that call, the server keeps serving") {
  in_each_mode([](server_options mode) -> task<> {
    mode.max_message_bytes = 1024;
    stream_outcome seen;
    co_await with_server(
        [&seen](server& s) {
          reading_handler(seen)(s);
          s.add_unary<Msg, Msg>(unary_method, [](Msg m) -> task<Msg> { co_return m; });
        },
        [&seen](channel& ch, server&) -> task<> {
          StatusCode code = StatusCode::OK;
          try {
            auto call = co_await ch.open<Msg, Msg>(client_stream_method);
            for (int i = 0; i < 3; ++i) co_await call.write(msg("small", i));
            co_await call.write(msg(std::string(4000, 'x')));
            co_await call.writes_done();
            while (co_await call.read()) {
            }
            co_await call.finish();
          } catch (const status_error& e) {
            code = e.code();
          }
          CHECK(code == StatusCode::RESOURCE_EXHAUSTED);
          co_await seen.done.wait();
          CHECK(seen.texts.size() <= 3);  // the oversized message never reached the handler
          // gRPC cut the call: the handler's reads end in an error (or its task is cancelled),
          // never as a stream the client finished, whichever reaches the handler first.
          CHECK(seen.cut);
          CHECK_FALSE(seen.whole);
          CHECK((co_await ch.call<Msg>(unary_method, msg("after", 7))).n() == 7);
        },
        mode);
  });
}

TEST_CASE("a client stream the client drops mid-way never reads as a finished one") {
  in_each_mode([](server_options mode) -> task<> {
    stream_outcome seen;
    co_await with_server(
        reading_handler(seen),
        [&seen](channel& ch, server&) -> task<> {
          {
            auto call = co_await ch.open<Msg, Msg>(client_stream_method);
            co_await call.write(msg("one"));
            co_await seen.first.wait();  // the handler now waits in its next read
          }  // dropped before finish(): the call is cancelled, the stream reset
          co_await seen.done.wait();
          CHECK(seen.cut);
          CHECK_FALSE(seen.whole);
        },
        mode);
  });
}

TEST_CASE("a handler's status_error, or any other exception, is the status the caller gets") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [](Msg m) -> task<Msg> {
            if (m.n() == 1) throw status_error(StatusCode::NOT_FOUND, "no note 1");
            if (m.n() == 2) throw std::logic_error("a bug");
            if (m.n() == 3) throw 42;  // not a std::exception
            co_return m;
          });
        },
        [](channel& ch, server&) -> task<> {
          try {
            (void)co_await ch.call<Msg>(unary_method, msg("x", 1));
            FAIL("the call succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::NOT_FOUND);
            CHECK(e.message() == "no note 1");
          }
          try {
            (void)co_await ch.call<Msg>(unary_method, msg("x", 2));
            FAIL("the call succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::UNKNOWN);
            CHECK(e.message() == "a bug");
          }
          try {
            (void)co_await ch.call<Msg>(unary_method, msg("x", 3));
            FAIL("the call succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::UNKNOWN);
            CHECK(e.message().find("not a std::exception") != std::string::npos);
          }
        },
        mode);
  });
}

TEST_CASE("a status_error's binary details reach the caller byte for byte, from any kind") {
  in_each_mode([](server_options mode) -> task<> {
    static const std::string details("\x08\x09\x00\xfe{\"retry\":1}", 15);
    co_await with_server(
        [](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [](Msg) -> task<Msg> {
            throw status_error(StatusCode::RESOURCE_EXHAUSTED, "busy", details);
            co_return Msg();
          });
          s.add_bidi<Msg, Msg>(bidi_method, [](server_stream<Msg, Msg>& st) -> task<> {
            (void)co_await st.read();
            throw status_error(StatusCode::ABORTED, "conflict", details + details);
          });
        },
        [](channel& ch, server&) -> task<> {
          try {
            (void)co_await ch.call<Msg>(unary_method, msg("x"));
            FAIL("the call succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::RESOURCE_EXHAUSTED);
            CHECK(e.details() == details);
          }
          auto call = co_await ch.open<Msg, Msg>(bidi_method);
          co_await call.write(msg("a"));
          co_await call.writes_done();
          try {
            while (co_await call.read()) {
            }
            co_await call.finish();
            FAIL("the call succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::ABORTED);
            CHECK(e.details() == details + details);
          }
        },
        mode);
  });
}

TEST_CASE("each call runs in a copy of serve()'s context: serve()'s vars, no other call's sets") {
  static baton::context_var<int> tenant("tenant", 0);
  in_each_mode([](server_options mode) -> task<> {
    (void)tenant.set(7);  // before with_server spawns serve(): serve()'s context holds it
    co_await with_server(
        [](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [](Msg m) -> task<Msg> {
            const int before = tenant.get();
            (void)tenant.set(m.n());  // the call's own copy only
            co_return msg("", before);
          });
        },
        [](channel& ch, server&) -> task<> {
          for (int i = 1; i <= 3; ++i) {
            Msg r = co_await ch.call<Msg>(unary_method, msg("", i));
            CHECK(r.n() == 7);
          }
        },
        mode);
    CHECK(tenant.get() == 7);
  });
}

TEST_CASE("a handler whose deadline passes is cancelled, and the caller gets DEADLINE_EXCEEDED") {
  in_each_mode([](server_options mode) -> task<> {
    // The deadline must pass while the handler is parked; on a machine too busy to start it
    // in time the attempt says nothing, and the next one gives the handler twice as long.
    bool parked_in_time = false;
    for (auto budget = 200ms; !parked_in_time && budget < 60s; budget *= 2) {
      parked_handler h;
      co_await with_server(
          [&h](server& s) { s.add_unary<Msg, Msg>(unary_method, [&h](Msg m) { return h(m); }); },
          [&](channel& ch, server&) -> task<> {
            baton::grpc::call_options opts;
            opts.timeout = budget;
            auto code = co_await status_of(ch.call<Msg>(unary_method, msg("x"), opts));
            CHECK(code == StatusCode::DEADLINE_EXCEEDED);
            parked_in_time = h.entered.is_set();
            if (parked_in_time) co_await h.cancelled.wait();
          },
          mode);
    }
    CHECK(parked_in_time);
  });
}

TEST_CASE("a call over max_calls is refused with RESOURCE_EXHAUSTED, and served once one ends") {
  in_each_mode([](server_options mode) -> task<> {
    mode.max_calls = 2;
    struct gate {
      int in = 0;  // handlers holding a place (the serving loop's one thread counts them)
      baton::event full;
      baton::event release;
    } g;
    co_await with_server(
        [&g](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [&g](Msg m) -> task<Msg> {
            if (m.n() < 0) {  // held until released
              if (++g.in == 2) g.full.set();
              co_await g.release.wait();
            }
            co_return m;
          });
        },
        [&g](channel& ch, server&) -> task<> {
          auto a = baton::spawn(ch.call<Msg>(unary_method, msg("a", -1)));
          auto b = baton::spawn(ch.call<Msg>(unary_method, msg("b", -2)));
          co_await g.full.wait();
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("c", 3))) ==
                StatusCode::RESOURCE_EXHAUSTED);
          g.release.set();
          CHECK((co_await a).n() == -1);
          CHECK((co_await b).n() == -2);
          // Both places were given back before their replies went out.
          CHECK((co_await ch.call<Msg>(unary_method, msg("d", 4))).n() == 4);
        },
        mode);
  });
}

TEST_CASE("a flood of calls never has more than max_calls handlers running, and each call ends") {
  in_each_mode([](server_options mode) -> task<> {
    mode.max_calls = 8;
    struct load {
      int running = 0;  // handlers running now (the serving loop's one thread counts them)
      int most = 0;     // the most that ever ran at once
    } l;
    co_await with_server(
        [&l](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [&l](Msg m) -> task<Msg> {
            l.most = std::max(l.most, ++l.running);
            co_await baton::sleep(1ms);  // work that keeps the handler in flight a while
            --l.running;
            co_return m;
          });
        },
        [&l](channel& ch, server&) -> task<> {
          std::vector<baton::task_handle<StatusCode>> calls;
          for (int i = 0; i < 200; ++i) {
            calls.push_back(baton::spawn(status_of(ch.call<Msg>(unary_method, msg("x", i)))));
          }
          int ok = 0;
          int refused = 0;
          for (auto& c : calls) {
            const StatusCode code = co_await c;
            ok += code == StatusCode::OK ? 1 : 0;
            refused += code == StatusCode::RESOURCE_EXHAUSTED ? 1 : 0;
          }
          CHECK(ok + refused == 200);  // nothing else: no call lost or failed otherwise
          CHECK(ok >= 1);
          CHECK(l.most <= 8);
          CHECK(l.running == 0);
          // Every place was given back: max_calls calls at once are served again.
          std::vector<baton::task_handle<StatusCode>> again;
          for (int i = 0; i < 8; ++i) {
            again.push_back(baton::spawn(status_of(ch.call<Msg>(unary_method, msg("y", i)))));
          }
          for (auto& c : again) CHECK(co_await c == StatusCode::OK);
        },
        mode);
  });
}

TEST_CASE("call_time_limit caps a longer client deadline: the handler sees it, then is cancelled") {
  in_each_mode([](server_options mode) -> task<> {
    mode.call_time_limit = 300ms;
    parked_handler h;
    std::optional<baton::grpc::deadline_point> deadline;
    std::optional<baton::grpc::deadline_point> latest;  // now + the limit, in the handler
    co_await with_server(
        [&](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [&](Msg m) {
            deadline = baton::grpc::current_deadline();
            latest = std::chrono::steady_clock::now() + 300ms;
            return h(m);
          });
        },
        [&](channel& ch, server&) -> task<> {
          baton::grpc::call_options opts;
          opts.timeout = 1h;
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("x"), opts)) ==
                StatusCode::DEADLINE_EXCEEDED);
          // A machine too busy to start the handler within the limit cancels it unstarted.
          if (h.entered.is_set()) {
            co_await h.cancelled.wait();
            REQUIRE(deadline.has_value());
            CHECK(*deadline <= *latest);  // the limit's, not the client's hour
          }
        },
        mode);
  });
}

TEST_CASE("call_time_limit ends a client stream whose client never finishes sending") {
  in_each_mode([](server_options mode) -> task<> {
    mode.call_time_limit = 300ms;
    stream_outcome seen;
    co_await with_server(
        reading_handler(seen),
        [&seen](channel& ch, server&) -> task<> {
          StatusCode code = StatusCode::OK;
          try {
            // No deadline, one message, then silence: neither more messages nor writes_done.
            auto call = co_await ch.open<Msg, Msg>(client_stream_method);
            co_await call.write(msg("one"));
            while (co_await call.read()) {
            }
            co_await call.finish();
          } catch (const status_error& e) {
            code = e.code();
          }
          CHECK(code == StatusCode::DEADLINE_EXCEEDED);
          co_await seen.done.wait();
          CHECK(seen.cut);  // never a partial stream taken for a whole one
          CHECK_FALSE(seen.whole);
          // A read cut by the limit says so (not CANCELLED), unless the task's cancellation,
          // which "done" brings, reached it first.
          if (seen.read_error) CHECK(*seen.read_error == StatusCode::DEADLINE_EXCEEDED);
        },
        mode);
  });
}

TEST_CASE("call_time_limit ends each late call, in whatever order calls finish") {
  in_each_mode([](server_options mode) -> task<> {
    mode.call_time_limit = 300ms;
    baton_test::parked first;
    baton_test::parked third;
    co_await with_server(
        [&](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [&](Msg m) -> task<Msg> {
            if (m.n() == 1) co_await first.park();
            if (m.n() == 3) co_await third.park();
            co_return m;
          });
        },
        [&](channel& ch, server&) -> task<> {
          auto a = baton::spawn(status_of(ch.call<Msg>(unary_method, msg("a", 1))));
          co_await first.entered.wait();  // a is the oldest call
          // b arrives after a and finishes long before its limit: it leaves the queue early.
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("b", 2))) == StatusCode::OK);
          auto c = baton::spawn(status_of(ch.call<Msg>(unary_method, msg("c", 3))));
          CHECK(co_await a == StatusCode::DEADLINE_EXCEEDED);
          CHECK(co_await c == StatusCode::DEADLINE_EXCEEDED);
          co_await first.cancelled.wait();
          if (third.entered.is_set()) co_await third.cancelled.wait();
        },
        mode);
  });
}

TEST_CASE("a method not time_limited outlives call_time_limit once its request is in") {
  in_each_mode([](server_options mode) -> task<> {
    mode.call_time_limit = 300ms;
    baton::event go;  // set once a limited call younger than the stream has been ended
    std::optional<baton::grpc::deadline_point> stream_deadline{baton::grpc::deadline_point()};
    baton_test::parked limited;
    co_await with_server(
        [&](server& s) {
          s.add_server_streaming<Msg, Msg>(server_stream_method,
                                           [&](Msg m, server_stream<Msg, Msg>& out) -> task<> {
                                             stream_deadline = baton::grpc::current_deadline();
                                             co_await out.write(msg(m.text(), 1));
                                             co_await go.wait();
                                             co_await out.write(msg(m.text(), 2));
                                           },
                                           {.time_limited = false});
          s.add_unary<Msg, Msg>(unary_method, [&](Msg) -> task<Msg> {
            co_await limited.park();
            co_return Msg();
          });
        },
        [&](channel& ch, server&) -> task<> {
          auto stream = co_await ch.open<Msg, Msg>(server_stream_method);
          co_await stream.write(msg("watch"));
          co_await stream.writes_done();
          auto first = co_await stream.read();
          REQUIRE(first.has_value());
          CHECK(first->n() == 1);
          // A limited call that arrives after the stream: once the limit has ended it, the
          // stream's own limit (earlier) has passed too.
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("late"))) ==
                StatusCode::DEADLINE_EXCEEDED);
          go.set();
          auto second = co_await stream.read();
          REQUIRE(second.has_value());
          CHECK(second->n() == 2);
          CHECK_FALSE((co_await stream.read()).has_value());
          CHECK(co_await status_of(stream.finish()) == StatusCode::OK);
          CHECK_FALSE(stream_deadline.has_value());  // the client sent none, the limit is off
          if (limited.entered.is_set()) co_await limited.cancelled.wait();
        },
        mode);
  });
}

TEST_CASE("a unary method not time_limited outlives call_time_limit once its request is in") {
  // A unary call is linked to the limit at arrival and unlinked as its request is read, on the
  // same path as a server-streaming one; this holds it for the unary kind.
  in_each_mode([](server_options mode) -> task<> {
    mode.call_time_limit = 300ms;
    const std::string exempt_method = "/baton.test.Slow/Unary";  // unknown to the pool: as given
    baton::event go;  // set once a limited call younger than the exempt one has been ended
    std::optional<baton::grpc::deadline_point> exempt_deadline{baton::grpc::deadline_point()};
    baton::event exempt_entered;
    baton_test::parked limited;
    co_await with_server(
        [&](server& s) {
          s.add_unary<Msg, Msg>(exempt_method,
                                [&](Msg m) -> task<Msg> {
                                  exempt_deadline = baton::grpc::current_deadline();
                                  exempt_entered.set();
                                  co_await go.wait();
                                  m.set_n(m.n() + 1);
                                  co_return m;
                                },
                                {.time_limited = false});
          s.add_unary<Msg, Msg>(unary_method, [&](Msg) -> task<Msg> {
            co_await limited.park();
            co_return Msg();
          });
        },
        [&](channel& ch, server&) -> task<> {
          auto exempt = baton::spawn(ch.call<Msg>(exempt_method, msg("slow", 41)));
          co_await exempt_entered.wait();
          // A limited call that arrives after the exempt one: once the limit has ended it, the
          // exempt call's own limit (earlier) has passed too.
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("late"))) ==
                StatusCode::DEADLINE_EXCEEDED);
          go.set();
          Msg reply = co_await exempt;
          CHECK(reply.n() == 42);
          CHECK_FALSE(exempt_deadline.has_value());  // the client sent none, the limit is off
          if (limited.entered.is_set()) co_await limited.cancelled.wait();
        },
        mode);
  });
}

TEST_CASE("a server with an hour's call_time_limit still shuts down as soon as its calls end") {
  in_each_mode([](server_options mode) -> task<> {
    mode.call_time_limit = 1h;  // serve() must not wait for the limit's alarm
    int ran = 0;
    server srv(mode);
    counting_echo(ran)(srv);
    srv.start();
    auto serving = baton::spawn(srv.serve());
    {
      channel ch(baton_test::connect(srv));
      CHECK((co_await ch.call<Msg>(unary_method, msg("x", 5))).n() == 5);
      CHECK(ran == 1);
    }
    srv.shutdown();
    // Waited for through an event, with a bound far above an idle server's shutdown and far
    // below the hour: a serve() that waits for the limit's alarm fails the CHECK, which says so
    // before the suite's own timeout ends the hang (waiting on `serving` itself would cancel it
    // at the bound and wait again).
    baton::event returned;
    auto watcher = baton::spawn([](baton::task_handle<void>& s, baton::event& r) -> task<> {
      co_await s;
      r.set();
    }(serving, returned));
    bool in_time = true;
    auto returned_wait = returned.wait();
    try {
      co_await baton::wait_for(std::move(returned_wait), 60s);
    } catch (const baton::timeout_error&) {
      in_time = false;
    }
    CHECK(in_time);
    co_await watcher;
  });
}

TEST_CASE("shutdown cancels the calls still running when its grace is over, then serve returns") {
  in_each_mode([](server_options mode) -> task<> {
    parked_handler h;
    server srv(mode);
    srv.add_unary<Msg, Msg>(unary_method, [&h](Msg m) { return h(m); });
    srv.start();
    auto serving = baton::spawn(srv.serve());
    channel ch(baton_test::connect(srv));
    auto call = baton::spawn(status_of(ch.call<Msg>(unary_method, msg("x"))));
    co_await h.entered.wait();
    srv.shutdown(0ms);
    co_await serving;  // returns only once the parked call is gone
    CHECK(h.cancelled.is_set());
    CHECK(co_await call != StatusCode::OK);
  });
}

TEST_CASE("shutdown from another thread with no call in flight lets serve return, every time") {
  // Nothing in flight: the shutdown thread can finish before shutdown() has returned on the
  // thread that started it, and serve() must still join it safely (TSan checks the hand-over).
  in_each_mode([](server_options mode) -> task<> {
    int returned = 0;  // serve() calls that returned without an exception
    for (int i = 0; i < 20; ++i) {
      server srv(mode);
      srv.add_unary<Msg, Msg>(unary_method, [](Msg m) -> task<Msg> { co_return m; });
      srv.start();
      auto serving = baton::spawn(srv.serve());
      co_await baton::to_thread([&srv] { srv.shutdown(0ms); });
      co_await serving;  // rethrows what serve() threw
      ++returned;
    }
    CHECK(returned == 20);
  });
}

TEST_CASE("a call in flight at shutdown finishes normally within the grace period") {
  in_each_mode([](server_options mode) -> task<> {
    held_call held;
    server srv(mode);
    srv.add_unary<Msg, Msg>(unary_method, [&held](Msg m) { return held(std::move(m)); });
    srv.start();
    auto serving = baton::spawn(srv.serve());
    channel ch(baton_test::connect(srv));
    auto call = baton::spawn(ch.call<Msg>(unary_method, msg("late", 7)));
    co_await held.entered.wait();
    srv.shutdown(60s);
    held.release.set();
    Msg r = co_await call;
    CHECK(r.n() == 7);
    co_await serving;
  });
}

TEST_CASE("cancelling the serving task shuts the server down and cancels its calls") {
  in_each_mode([](server_options mode) -> task<> {
    parked_handler h;
    server srv(mode);
    srv.add_unary<Msg, Msg>(unary_method, [&h](Msg m) { return h(m); });
    auto serving = baton::spawn(srv.serve());
    co_await baton_test::settle();
    channel ch(baton_test::connect(srv));
    auto call = baton::spawn(status_of(ch.call<Msg>(unary_method, msg("x"))));
    co_await h.entered.wait();
    serving.cancel();
    CHECK_THROWS_AS(co_await serving, baton::cancelled_error);
    CHECK(h.cancelled.is_set());
    CHECK(co_await call != StatusCode::OK);
  });
}

TEST_CASE("write() in a client-streaming handler is misuse the caller sees as UNKNOWN") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_client_streaming<Msg, Msg>(client_stream_method,
                                           [](server_stream<Msg, Msg>& in) -> task<Msg> {
                                             co_await in.write(msg("not allowed"));
                                             co_return Msg();
                                           });
        },
        [](channel& ch, server&) -> task<> {
          auto call = co_await ch.open<Msg, Msg>(client_stream_method);
          co_await call.writes_done();
          try {
            co_await call.finish();
            FAIL("the call succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::UNKNOWN);
            CHECK(e.message().rfind("baton: grpc: write()", 0) == 0);
          }
        },
        mode);
  });
}

TEST_CASE("read() in a server-streaming handler, past its one request, is misuse seen as UNKNOWN") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_server_streaming<Msg, Msg>(server_stream_method,
                                           [](Msg m, server_stream<Msg, Msg>& io) -> task<> {
                                             co_await io.write(m);  // the request arrived
                                             (void)co_await io.read();
                                           });
        },
        [](channel& ch, server&) -> task<> {
          auto call = co_await ch.open<Msg, Msg>(server_stream_method);
          co_await call.write(msg("once", 7));
          co_await call.writes_done();
          auto first = co_await call.read();
          REQUIRE(first);
          CHECK(first->n() == 7);
          CHECK_FALSE(co_await call.read());
          try {
            co_await call.finish();
            FAIL("the call succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::UNKNOWN);
            CHECK(e.message().rfind("baton: grpc: read() after the call's one request", 0) == 0);
          }
        },
        mode);
  });
}

namespace {

/// Who the on_call tests' hook says is calling: the x-tenant field, or "none".
baton::context_var<std::string> tenant_var("tenant", "unset");

}  // namespace

TEST_CASE("on_call fills each call's context from its metadata: every handler sees its own") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.on_call([](const std::string&, const ::grpc::ServerContext& call) -> task<> {
            (void)tenant_var.set(field_of(call, "x-tenant"));
            co_return;
          });
          s.add_unary<Msg, Msg>(unary_method,
                                [](Msg m) -> task<Msg> { co_return msg(tenant_var.get(), m.n()); });
          s.add_bidi<Msg, Msg>(bidi_method, [](server_stream<Msg, Msg>& st) -> task<> {
            while (auto m = co_await st.read()) co_await st.write(msg(tenant_var.get(), m->n()));
          });
        },
        [](channel& ch, server&) -> task<> {
          std::vector<baton::task_handle<Msg>> calls;
          for (int i = 0; i < 20; ++i) {
            baton::grpc::call_options opts;
            opts.metadata.emplace_back("x-tenant", "t" + std::to_string(i));
            calls.push_back(baton::spawn(ch.call<Msg>(unary_method, msg("", i), opts)));
          }
          for (int i = 0; i < 20; ++i) {
            CHECK((co_await calls[static_cast<std::size_t>(i)]).text() == "t" + std::to_string(i));
          }
          baton::grpc::call_options opts;
          opts.metadata.emplace_back("x-tenant", "streamer");
          auto st = co_await ch.open<Msg, Msg>(bidi_method, opts);
          co_await st.write(msg("", 1));
          CHECK((co_await st.read())->text() == "streamer");
          co_await st.writes_done();
          CHECK(co_await st.read() == std::nullopt);
          co_await st.finish();
          CHECK((co_await ch.call<Msg>(unary_method, msg("", 0))).text() == "none");
          CHECK(tenant_var.get() == "unset");  // the calls' sets stayed in the calls
        },
        mode);
  });
}

TEST_CASE("an on_call hook that throws refuses the call, registered method or not, unrun") {
  in_each_mode([](server_options mode) -> task<> {
    int ran = 0;
    std::vector<std::string> asked;  // the methods the hook saw
    co_await with_server(
        [&](server& s) {
          s.on_call(
              [&asked](const std::string& method, const ::grpc::ServerContext& call) -> task<> {
                asked.push_back(method);
                if (field_of(call, "authorization") != "Bearer ok") {
                  throw status_error(StatusCode::UNAUTHENTICATED, "no valid token");
                }
                co_return;
              });
          counting_echo(ran)(s);
        },
        [&](channel& ch, server&) -> task<> {
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("x"))) ==
                StatusCode::UNAUTHENTICATED);
          CHECK(co_await status_of(ch.call<Msg>("/nobody.Knows/This", msg("x"))) ==
                StatusCode::UNAUTHENTICATED);  // not UNIMPLEMENTED: nothing learned unasked
          CHECK(ran == 0);
          baton::grpc::call_options token;
          token.metadata.emplace_back("authorization", "Bearer ok");
          CHECK((co_await ch.call<Msg>(unary_method, msg("y", 4), token)).n() == 4);
          CHECK(co_await status_of(ch.call<Msg>("/nobody.Knows/This", msg("x"), token)) ==
                StatusCode::UNIMPLEMENTED);
          CHECK(ran == 1);
          CHECK(asked == std::vector<std::string>{unary_method, "/nobody.Knows/This", unary_method,
                                                  "/nobody.Knows/This"});
        },
        mode);
  });
}

namespace {

/// What an on_call_end hook saw of one call.
struct ended_call {
  std::string method;
  StatusCode code;
  std::string tenant;    // tenant_var in the call's context as it ended
  std::string trace_id;  // the call's trace
  std::chrono::steady_clock::duration ran;
};

std::string current_trace_id() {
  const auto t = baton::current_trace();
  return t ? t->trace_id_hex() : std::string("none");
}

}  // namespace

TEST_CASE("on_call_end sees each call once, in its context, with the status going out") {
  in_each_mode([](server_options mode) -> task<> {
    std::vector<ended_call> ended;
    baton::event handler_cancel_ended;
    baton_test::parked p;
    co_await with_server(
        [&](server& s) {
          s.on_call([](const std::string&, const ::grpc::ServerContext& call) -> task<> {
            const std::string tenant = field_of(call, "x-tenant");
            if (tenant == "banned") throw status_error(StatusCode::PERMISSION_DENIED, "banned");
            (void)tenant_var.set(tenant);
            co_return;
          });
          s.on_call_end([&](const std::string& method, const ::grpc::Status& status,
                            std::chrono::steady_clock::duration ran) {
            ended.push_back(
                {method, status.error_code(), tenant_var.get(), current_trace_id(), ran});
            if (status.error_code() == StatusCode::CANCELLED) handler_cancel_ended.set();
          });
          s.add_unary<Msg, Msg>(unary_method, [&p](Msg m) -> task<Msg> {
            if (m.n() == 1) throw status_error(StatusCode::NOT_FOUND, "no such note");
            if (m.n() == 2) co_await p.park();
            if (m.n() == 3) co_await baton::sleep(20ms);
            co_return m;
          });
        },
        [&](channel& ch, server&) -> task<> {
          auto span = baton::start_span();  // the caller's trace, which each call carries on
          const std::string trace = current_trace_id();
          const auto tenant = [](const char* t) {
            baton::grpc::call_options o;
            o.metadata.emplace_back("x-tenant", t);
            return o;
          };
          baton::grpc::call_options a = tenant("a"), b = tenant("b"), c = tenant("c"),
                                    banned = tenant("banned"), slow = tenant("slow");
          slow.timeout = 100ms;
          CHECK((co_await ch.call<Msg>(unary_method, msg("x", 3), a)).n() == 3);
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("x", 1), b)) ==
                StatusCode::NOT_FOUND);
          CHECK(co_await status_of(ch.call<Msg>("/nobody.Knows/This", msg("x"), c)) ==
                StatusCode::UNIMPLEMENTED);
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("x"), banned)) ==
                StatusCode::PERMISSION_DENIED);
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("x", 2), slow)) ==
                StatusCode::DEADLINE_EXCEEDED);
          co_await handler_cancel_ended.wait();  // the server's side of the expired call
          baton::trace_parent_var().reset(span);
          REQUIRE(ended.size() == 5);
          CHECK(ended[0].method == unary_method);
          CHECK(ended[0].code == StatusCode::OK);
          CHECK(ended[0].tenant == "a");
          CHECK(ended[0].ran >= 20ms);  // the handler's sleep is inside what the hook measures
          CHECK(ended[1].code == StatusCode::NOT_FOUND);
          CHECK(ended[1].tenant == "b");
          CHECK(ended[2].method == "/nobody.Knows/This");
          CHECK(ended[2].code == StatusCode::UNIMPLEMENTED);
          CHECK(ended[2].tenant == "c");
          CHECK(ended[3].code == StatusCode::PERMISSION_DENIED);
          CHECK(ended[3].tenant == "unset");  // refused before the hook set it
          CHECK(ended[4].code == StatusCode::CANCELLED);
          CHECK(ended[4].tenant == "slow");
          for (const auto& e : ended) CHECK(e.trace_id == trace);
          CHECK(tenant_var.get() == "unset");
        },
        mode);
  });
}

TEST_CASE("on_call_end sees a call refused over max_calls, after its status, in its trace") {
  in_each_mode([](server_options mode) -> task<> {
    mode.max_calls = 1;
    std::vector<ended_call> ended;
    baton::event refusal_reported;
    baton::event cancel_reported;
    baton_test::parked p;
    co_await with_server(
        [&](server& s) {
          s.on_call([](const std::string&, const ::grpc::ServerContext&) -> task<> {
            (void)tenant_var.set("on_call ran");
            co_return;
          });
          s.on_call_end([&](const std::string& method, const ::grpc::Status& status,
                            std::chrono::steady_clock::duration ran) {
            ended.push_back(
                {method, status.error_code(), tenant_var.get(), current_trace_id(), ran});
            if (status.error_code() == StatusCode::RESOURCE_EXHAUSTED) refusal_reported.set();
            if (status.error_code() == StatusCode::CANCELLED) cancel_reported.set();
          });
          s.add_unary<Msg, Msg>(unary_method, [&p](Msg m) -> task<Msg> {
            if (m.n() == 2) co_await p.park();
            co_return m;
          });
        },
        [&](channel& ch, server&) -> task<> {
          auto span = baton::start_span();
          const std::string trace = current_trace_id();
          auto holder = baton::spawn(status_of(ch.call<Msg>(unary_method, msg("x", 2))));
          co_await p.entered.wait();  // the one place under max_calls is taken
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("x", 3))) ==
                StatusCode::RESOURCE_EXHAUSTED);
          co_await refusal_reported.wait();  // reported after the status went out
          REQUIRE(ended.size() == 1);
          CHECK(ended[0].method == unary_method);
          CHECK(ended[0].ran == std::chrono::steady_clock::duration::zero());
          CHECK(ended[0].trace_id == trace);  // filled from the refused call's metadata
          CHECK(ended[0].tenant == "unset");  // no task, so no on_call
          holder.cancel();                    // the parked call ends: CANCELLED, reported too
          CHECK_THROWS_AS((void)co_await holder, baton::cancelled_error);
          // Set by the hook, so this task runs after the call's end, which gave its place back.
          co_await cancel_reported.wait();
          CHECK((co_await ch.call<Msg>(unary_method, msg("x", 4))).n() == 4);
          baton::trace_parent_var().reset(span);
          REQUIRE(ended.size() == 3);
          CHECK(ended[1].code == StatusCode::CANCELLED);
          CHECK(ended[1].tenant == "on_call ran");
          CHECK(ended[2].code == StatusCode::OK);
          for (const auto& e : ended) CHECK(e.trace_id == trace);
        },
        mode);
  });
}

TEST_CASE("a call cancelled while its start is on the way to the loop ends CANCELLED, unrun") {
  // The routing mode, where the queue's thread hands each call's start to the loop: the test
  // holds the loop from before the start is handed over until gRPC's "done" for the cancelled
  // call has been seen, so the task is spawned already cancelled and never runs its body. (Under
  // poll_on_loop the loop's thread takes both steps itself, the start first.)
  server_options opts;
  opts.addresses = {"127.0.0.1:0"};
  baton::run([&opts]() -> task<> {
    std::promise<void> posted;
    std::promise<void> done;
    std::atomic<bool> posted_said{false};
    std::atomic<bool> done_said{false};
    std::vector<ended_call> ended;
    baton::event reported;
    int handled = 0;
    co_await with_server(
        [&](server& s) {
          using baton::grpc::detail::call_step;
          baton::grpc::detail::server_seam::observe_call_steps(s, [&](call_step step) {
            if (step == call_step::start_posted && !posted_said.exchange(true)) posted.set_value();
            if (step == call_step::done_seen && !done_said.exchange(true)) done.set_value();
          });
          s.on_call_end([&](const std::string& method, const ::grpc::Status& status,
                            std::chrono::steady_clock::duration ran) {
            ended.push_back({method, status.error_code(), "", current_trace_id(), ran});
            reported.set();
          });
          s.add_unary<Msg, Msg>(unary_method, [&handled](Msg m) -> task<Msg> {
            ++handled;
            co_return m;
          });
        },
        [&](channel& ch, server& srv) -> task<> {
          const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
          ::grpc::ClientContext call;
          call.AddMetadata("traceparent", "00-" + trace + "-00f067aa0ba902b7-01");
          ::grpc::Status client_status;
          auto stub = baton::test::Echo::NewStub(baton_test::connect(srv));
          std::thread client([&] {
            Msg reply;
            client_status = stub->Unary(&call, msg("x", 1), &reply);
          });
          // From here to "done" this task blocks the loop's one thread: the start waits.
          const bool was_posted =
              posted.get_future().wait_for(std::chrono::minutes(1)) == std::future_status::ready;
          if (was_posted) call.TryCancel();
          const bool was_done =
              done.get_future().wait_for(std::chrono::minutes(1)) == std::future_status::ready;
          client.join();
          REQUIRE(was_posted);
          REQUIRE(was_done);
          CHECK(client_status.error_code() == StatusCode::CANCELLED);
          co_await reported.wait();
          REQUIRE(ended.size() == 1);
          CHECK(ended[0].method == unary_method);
          CHECK(ended[0].code == StatusCode::CANCELLED);
          CHECK(ended[0].ran == std::chrono::steady_clock::duration::zero());
          CHECK(ended[0].trace_id == trace);  // the context was filled from the call's metadata
          CHECK(handled == 0);
          // The server goes on serving: the next call runs its handler.
          CHECK((co_await ch.call<Msg>(unary_method, msg("y", 2))).n() == 2);
          CHECK(handled == 1);
          REQUIRE(ended.size() == 2);
          CHECK(ended[1].code == StatusCode::OK);
        },
        opts);
  }());
}

TEST_CASE("an on_call_end hook that throws leaves the call's own status") {
  in_each_mode([](server_options mode) -> task<> {
    int ended = 0;
    co_await with_server(
        [&ended](server& s) {
          s.on_call_end([&ended](const std::string&, const ::grpc::Status&,
                                 std::chrono::steady_clock::duration) {
            ++ended;
            throw std::runtime_error("a metrics sink that failed");
          });
          s.add_unary<Msg, Msg>(unary_method, [](Msg m) -> task<Msg> {
            if (m.n() == 1) throw status_error(StatusCode::ABORTED, "conflict");
            co_return m;
          });
        },
        [&ended](channel& ch, server&) -> task<> {
          CHECK((co_await ch.call<Msg>(unary_method, msg("x", 7))).n() == 7);
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("x", 1))) == StatusCode::ABORTED);
          CHECK(ended == 2);
        },
        mode);
  });
}

TEST_CASE("an on_call hook may await: what it sets after a to_thread reaches the handler") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.on_call([](const std::string&, const ::grpc::ServerContext& call) -> task<> {
            // A verification that blocks (a signature check), off the loop. Named, not a
            // temporary in the co_await (docs/notes/004).
            auto verify = [token = field_of(call, "authorization")] {
              return std::string(token == "Bearer ada" ? "ada" : "");
            };
            std::string user = co_await baton::to_thread(std::move(verify));
            if (user.empty()) throw status_error(StatusCode::PERMISSION_DENIED, "who?");
            (void)tenant_var.set(user);
          });
          s.add_unary<Msg, Msg>(unary_method,
                                [](Msg m) -> task<Msg> { co_return msg(tenant_var.get(), m.n()); });
        },
        [](channel& ch, server&) -> task<> {
          baton::grpc::call_options ada;
          ada.metadata.emplace_back("authorization", "Bearer ada");
          CHECK((co_await ch.call<Msg>(unary_method, msg("", 1), ada)).text() == "ada");
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("", 2))) ==
                StatusCode::PERMISSION_DENIED);
        },
        mode);
  });
}

TEST_CASE("on_call or on_call_end after start(), a second time, or with an empty hook is refused") {
  run_task([]() -> task<> {
    server srv({.addresses = {"127.0.0.1:0"}});
    auto hook = [](const std::string&, const ::grpc::ServerContext&) -> task<> { co_return; };
    CHECK_THROWS_WITH_AS(srv.on_call(baton::grpc::call_hook()), doctest::Contains("empty hook"),
                         baton::runtime_error);
    CHECK_THROWS_WITH_AS(srv.on_call(baton::grpc::call_view_hook()),
                         doctest::Contains("empty hook"), baton::runtime_error);
    srv.on_call(hook);
    CHECK_THROWS_WITH_AS(srv.on_call(hook), doctest::Contains("twice"), baton::runtime_error);
    auto view_hook = [](const std::string&, baton::grpc::call_view&) -> task<> { co_return; };
    CHECK_THROWS_WITH_AS(srv.on_call(view_hook), doctest::Contains("twice"),
                         baton::runtime_error);  // one hook, whichever form
    srv.start();
    server late({.addresses = {"127.0.0.1:0"}});
    late.start();
    CHECK_THROWS_WITH_AS(late.on_call(hook), doctest::Contains("after start()"),
                         baton::runtime_error);
    auto end = [](const std::string&, const ::grpc::Status&, std::chrono::steady_clock::duration) {
    };
    CHECK_THROWS_WITH_AS(late.on_call_end(end), doctest::Contains("after start()"),
                         baton::runtime_error);
    server early({.addresses = {"127.0.0.1:0"}});
    CHECK_THROWS_WITH_AS(early.on_call_end(nullptr), doctest::Contains("empty hook"),
                         baton::runtime_error);
    early.on_call_end(end);
    CHECK_THROWS_WITH_AS(early.on_call_end(end), doctest::Contains("twice"), baton::runtime_error);
    co_return;
  });
}

TEST_CASE("registering a method twice, or after start(), throws a baton error") {
  run_task([]() -> task<> {
    server srv({.addresses = {"127.0.0.1:0"}});
    auto echo = [](Msg m) -> task<Msg> { co_return m; };
    srv.add_unary<Msg, Msg>(unary_method, echo);
    auto add = [&](const char* method) { srv.add_unary<Msg, Msg>(method, echo); };
    CHECK_THROWS_WITH_AS(add(unary_method), doctest::Contains("registered twice"),
                         baton::runtime_error);
    srv.start();
    CHECK_THROWS_WITH_AS(add(bidi_method), doctest::Contains("before start()"),
                         baton::runtime_error);
    CHECK(srv.port() > 0);
    co_return;
  });
}

TEST_CASE("a registration its compiled .proto contradicts is refused, naming the difference") {
  run_task([]() -> task<> {
    server srv({.addresses = {"127.0.0.1:0"}});
    auto echo = [](Msg m) -> task<Msg> { co_return m; };
    auto add = [&](const char* name) { srv.add_unary<Msg, Msg>(name, echo); };
    for (const char* name : {"Echo/Unary", "/baton.test.Echo", "/baton.test.Echo/", "/a/b/c"}) {
      CAPTURE(name);
      CHECK_THROWS_WITH_AS(add(name), doctest::Contains("is not a full method name"),
                           baton::runtime_error);
    }
    CHECK_THROWS_WITH_AS(
        add("/baton.test.Echo/Unry"),
        doctest::Contains("has no method Unry (it has: Unary, ServerStream, ClientStream, Bidi)"),
        baton::runtime_error);
    CHECK_THROWS_WITH_AS(add(bidi_method),
                         doctest::Contains("declares it bidirectional (add_bidi), registered as "
                                           "unary (add_unary)"),
                         baton::runtime_error);
    auto add_empty = [&] {
      srv.add_unary<google::protobuf::Empty, Msg>(
          unary_method, [](google::protobuf::Empty) -> task<Msg> { co_return Msg(); });
    };
    CHECK_THROWS_WITH_AS(
        add_empty(),
        doctest::Contains("its request is baton.test.Msg, registered with google.protobuf.Empty"),
        baton::runtime_error);
    // A service no compiled .proto describes is not checked; a proper registration passes.
    add("/nobody.Knows/This");
    add(unary_method);
    co_return;
  });
}

TEST_CASE("a message bound gRPC cannot hold (over INT_MAX) is refused at start()") {
  run_task([]() -> task<> {
    server srv(
        {.addresses = {"127.0.0.1:0"}, .max_message_bytes = std::size_t{1} << 31});  // INT_MAX + 1
    CHECK_THROWS_WITH_AS(srv.start(), doctest::Contains("max_message_bytes"), baton::runtime_error);
    co_return;
  });
}

TEST_CASE("a negative call_time_limit is refused at start()") {
  run_task([]() -> task<> {
    server srv({.addresses = {"127.0.0.1:0"}, .call_time_limit = -1ms});
    CHECK_THROWS_WITH_AS(srv.start(), doctest::Contains("call_time_limit"), baton::runtime_error);
    co_return;
  });
}

TEST_CASE("a connection_idle_limit or keepalive gRPC cannot hold is refused at start()") {
  run_task([]() -> task<> {
    for (const auto limit : {std::chrono::steady_clock::duration(-1ms),
                             std::chrono::steady_clock::duration(std::chrono::hours(24 * 30))}) {
      server idle({.addresses = {"127.0.0.1:0"}, .connection_idle_limit = limit});
      CHECK_THROWS_WITH_AS(idle.start(), doctest::Contains("connection_idle_limit"),
                           baton::runtime_error);
      server pings({.addresses = {"127.0.0.1:0"}, .keepalive_time = limit});
      CHECK_THROWS_WITH_AS(pings.start(), doctest::Contains("keepalive_time"),
                           baton::runtime_error);
      server answers({.addresses = {"127.0.0.1:0"}, .keepalive_timeout = limit});
      CHECK_THROWS_WITH_AS(answers.start(), doctest::Contains("keepalive_timeout"),
                           baton::runtime_error);
    }
    co_return;
  });
}

TEST_CASE("a server that cannot listen says so") {
  run_task([]() -> task<> {
    server srv({.addresses = {"256.1.1.1:1"}});
    CHECK_THROWS_AS(srv.start(), baton::runtime_error);
    co_return;
  });
}

// ---------------------------------------------------------------------------------------------
// poll_on_loop: the loop's thread waits in the server's queue, so everything else that wakes a
// loop must reach it there. A lost wake-up hangs the test (the suite's timeout reports it).

TEST_CASE("a loop polling the queue is still woken by its timers, to_thread and other threads") {
  run_task([]() -> task<> {
    server_options mode{.addresses = {"127.0.0.1:0"}, .poll_on_loop = true};
    co_await with_server(
        [](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [](Msg m) -> task<Msg> {
            co_await baton::sleep(std::chrono::milliseconds(2));  // a baton timer, parked in gRPC
            int doubled = co_await baton::to_thread([n = m.n()] { return n * 2; });
            co_return msg("", doubled);
          });
        },
        [](channel& ch, server& srv) -> task<> {
          REQUIRE(srv.polled_by_loop());
          CHECK((co_await ch.call<Msg>(unary_method, msg("", 21))).n() == 42);
          // Work handed in from another thread while the loop waits in gRPC with nothing due.
          auto here = baton::this_loop();
          int ran = 0;
          std::thread other([&] {
            for (int i = 0; i < 200; ++i) here.call([&] { ++ran; }).get();
          });
          while (ran < 200) co_await baton::to_thread([] {});
          other.join();
          CHECK(ran == 200);
        },
        mode);
  });
}

TEST_CASE("a plain Asio timer on a loop polling the queue still fires") {
  run_task([]() -> task<> {
    server_options mode{.addresses = {"127.0.0.1:0"}, .poll_on_loop = true};
    co_await with_server(
        [](server&) {},
        [](channel&, server& srv) -> task<> {
          REQUIRE(srv.polled_by_loop());
          // Only Asio's reactor knows this timer: the loop sees it at its next
          // poll of Asio, which a park in gRPC may not delay for ever.
          boost::asio::steady_timer t(baton::current_executor(), std::chrono::milliseconds(1));
          auto [ec] = co_await t.async_wait(boost::asio::as_tuple(baton::use_task));
          CHECK_FALSE(ec);
        },
        mode);
  });
}

TEST_CASE("a thousand to_thread round trips on a polling loop lose no wake-up") {
  run_task([]() -> task<> {
    server_options mode{.addresses = {"127.0.0.1:0"}, .poll_on_loop = true};
    co_await with_server([](server&) {},
                         [](channel&, server& srv) -> task<> {
                           REQUIRE(srv.polled_by_loop());
                           long sum = 0;
                           for (int i = 0; i < 1000; ++i) {
                             sum += co_await baton::to_thread([i] { return long{i}; });
                           }
                           CHECK(sum == 999L * 1000 / 2);
                         },
                         mode);
  });
}

TEST_CASE("poll_on_loop on a loop of several threads keeps the routing thread and still serves") {
  baton::run_options opts;
  opts.threads = 2;
  run_task(
      []() -> task<> {
        server_options routed{.addresses = {"127.0.0.1:0"}, .poll_on_loop = false};
        co_await with_server(
            [](server& s) {
              s.add_unary<Msg, Msg>(unary_method,
                                    [](Msg m) -> task<Msg> { co_return msg("", m.n() + 1); });
            },
            [](channel& ch, server& srv) -> task<> {
              CHECK_FALSE(srv.polled_by_loop());
              CHECK((co_await ch.call<Msg>(unary_method, msg("", 1))).n() == 2);
            },
            routed);
        // with_server checks polled_by_loop() against the option, so ask for it by hand here.
        server srv({.addresses = {"127.0.0.1:0"}, .poll_on_loop = true});
        srv.add_unary<Msg, Msg>(unary_method,
                                [](Msg m) -> task<Msg> { co_return msg("", m.n() + 1); });
        srv.start();
        auto serving = baton::spawn(srv.serve());
        co_await baton::sleep(std::chrono::seconds(0));
        CHECK_FALSE(srv.polled_by_loop());
        {
          channel ch(baton_test::connect(srv));
          CHECK((co_await ch.call<Msg>(unary_method, msg("", 41))).n() == 42);
        }
        srv.shutdown();
        co_await serving;
      },
      std::move(opts));
}

TEST_CASE("two servers polling on one loop: the second keeps a routing thread, both serve") {
  run_task([]() -> task<> {
    auto make = [](int add) {
      auto s = std::make_unique<server>(
          server_options{.addresses = {"127.0.0.1:0"}, .poll_on_loop = true});
      s->add_unary<Msg, Msg>(unary_method,
                             [add](Msg m) -> task<Msg> { co_return msg("", m.n() + add); });
      s->start();
      return s;
    };
    auto first = make(1);
    auto second = make(100);
    auto serving_first = baton::spawn(first->serve());
    co_await baton::sleep(std::chrono::seconds(0));
    auto serving_second = baton::spawn(second->serve());
    co_await baton::sleep(std::chrono::seconds(0));
    CHECK(first->polled_by_loop());
    CHECK_FALSE(second->polled_by_loop());  // the loop polls one queue at most
    {
      channel a(baton_test::connect(*first));
      channel b(baton_test::connect(*second));
      for (int i = 0; i < 20; ++i) {
        CHECK((co_await a.call<Msg>(unary_method, msg("", i))).n() == i + 1);
        CHECK((co_await b.call<Msg>(unary_method, msg("", i))).n() == i + 100);
      }
    }
    first->shutdown();
    second->shutdown();
    co_await serving_first;
    co_await serving_second;
  });
}
