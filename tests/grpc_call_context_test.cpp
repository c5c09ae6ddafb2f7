// SPDX-License-Identifier: BSL-1.0
// extract/inject: metadata into a handler's context and the caller's context into metadata,
// the deadline both ways, and hostile metadata (bad traceparent, oversized baggage, floods).
#include <baton/grpc/call_context.hpp>

#include <baton/context.hpp>
#include <baton/gather.hpp>
#include <baton/grpc/channel.hpp>
#include <baton/grpc/server.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/trace_context.hpp>
#include <doctest/doctest.h>
#include <support/grpc_echo.hpp>
#include <support/run_test.hpp>

#include <grpc/support/time.h>
#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

using namespace baton_test::grpc_names;
using baton_test::run_task;
using std::chrono::steady_clock;
using std::chrono::system_clock;

namespace {

/// What a handler found in its context.
struct seen_context {
  std::optional<baton::trace_parent> trace;
  std::string tracestate;
  std::string baggage;
  std::optional<baton::grpc::deadline_point> deadline;
  int calls = 0;
};

/// Registers a unary echo that records its context into `seen`.
auto recording(seen_context& seen) {
  return [&seen](server& s) {
    s.add_unary<Msg, Msg>(unary_method, [&seen](Msg m) -> task<Msg> {
      seen.trace = baton::current_trace();
      seen.tracestate = baton::current_trace_state().to_string();
      seen.baggage = baton::current_baggage().to_string();
      seen.deadline = baton::grpc::current_deadline();
      ++seen.calls;
      co_return m;
    });
  };
}

constexpr const char* caller_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

}  // namespace

TEST_CASE("a handler's context holds the caller's trace, tracestate and baggage") {
  run_task([]() -> task<> {
    seen_context seen;
    co_await with_server(recording(seen), [](channel& ch, server&) -> task<> {
      (void)baton::extract(std::vector<std::pair<std::string, std::string>>{
          {"traceparent", caller_parent},
          {"tracestate", "vendor=abc,other=1"},
          {"baggage", "user=ada,request_id=r-42"}});
      (void)co_await ch.call<Msg>(unary_method, msg("x"));
    });
    REQUIRE(seen.trace);
    CHECK(seen.trace->trace_id_hex() == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(seen.trace->sampled());
    CHECK(seen.tracestate == "vendor=abc,other=1");
    CHECK(seen.baggage == "user=ada,request_id=r-42");
  });
}

TEST_CASE("the handler has a span of its own whose parent is the caller's current span") {
  run_task([]() -> task<> {
    seen_context seen;
    co_await with_server(recording(seen), [](channel& ch, server&) -> task<> {
      (void)baton::extract(
          std::vector<std::pair<std::string, std::string>>{{"traceparent", caller_parent}});
      (void)co_await ch.call<Msg>(unary_method, msg("x"));
    });
    REQUIRE(seen.trace);
    CHECK(seen.trace->parent_id_hex() != "00f067aa0ba902b7");
    CHECK(seen.trace->valid());
  });
}

TEST_CASE("a call without a caller trace starts a fresh trace in the handler") {
  run_task([]() -> task<> {
    seen_context seen;
    co_await with_server(recording(seen), [](channel& ch, server&) -> task<> {
      (void)co_await ch.call<Msg>(unary_method, msg("x"));
    });
    REQUIRE(seen.trace);
    CHECK(seen.trace->valid());
    CHECK(seen.baggage.empty());
  });
}

TEST_CASE(
    "the call's context replaces serve()'s trace, baggage and deadline, even with none sent") {
  run_task([]() -> task<> {
    // serve() starts in a context with all four set: a call that sends none must not see them.
    (void)baton::extract(std::vector<std::pair<std::string, std::string>>{
        {"traceparent", caller_parent}, {"tracestate", "serve=1"}, {"baggage", "who=serve"}});
    (void)baton::grpc::deadline_var().set(steady_clock::now() + 1h);
    seen_context seen;
    co_await with_server(recording(seen), [](channel& ch, server&) -> task<> {
      // The caller sends nothing: no trace, no baggage, no deadline.
      (void)baton::trace_parent_var().set(std::nullopt);
      (void)baton::trace_state_var().set(baton::trace_state());
      (void)baton::baggage_var().set(baton::baggage());
      (void)baton::grpc::deadline_var().set(std::nullopt);
      (void)co_await ch.call<Msg>(unary_method, msg("x"));
    });
    REQUIRE(seen.calls == 1);
    REQUIRE(seen.trace);
    CHECK(seen.trace->trace_id_hex() != "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(seen.tracestate.empty());
    CHECK(seen.baggage.empty());
    CHECK_FALSE(seen.deadline);
  });
}

TEST_CASE("the handler's deadline is the call's, and a call without one leaves it unset") {
  run_task([]() -> task<> {
    seen_context seen;
    co_await with_server(recording(seen), [&seen](channel& ch, server&) -> task<> {
      auto before = steady_clock::now();
      baton::grpc::call_options opts;
      opts.timeout = 30s;
      (void)co_await ch.call<Msg>(unary_method, msg("x"), opts);
      REQUIRE(seen.deadline);
      CHECK(*seen.deadline > before);
      // grpc-timeout travels rounded up to its wire units (a few digits of precision).
      CHECK(*seen.deadline <= steady_clock::now() + 31s);
      (void)co_await ch.call<Msg>(unary_method, msg("x"));
      CHECK_FALSE(seen.deadline);
    });
  });
}

TEST_CASE("gRPC's deadlines on the steady clock: none past 10^9 s away, an infinite past expired") {
  using baton::grpc::detail::steady_deadline;
  const gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
  CHECK_FALSE(steady_deadline(gpr_inf_future(GPR_CLOCK_MONOTONIC)));
  // What a hostile grpc-timeout of 99999999H becomes: beyond a nanosecond time_point's range.
  gpr_timespec far = now;
  far.tv_sec += std::int64_t{99'999'999} * 3600;
  CHECK_FALSE(steady_deadline(far));

  const auto before = steady_clock::now();
  const auto past = steady_deadline(gpr_inf_past(GPR_CLOCK_MONOTONIC));
  REQUIRE(past);
  CHECK(*past <= steady_clock::now());
  const auto soon = steady_deadline(gpr_time_add(now, gpr_time_from_seconds(30, GPR_TIMESPAN)));
  REQUIRE(soon);
  CHECK(*soon >= before + 29s);
  CHECK(*soon <= steady_clock::now() + 30s);
  const auto real = steady_deadline(
      gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(30, GPR_TIMESPAN)));
  REQUIRE(real);
  CHECK(*real >= before + 29s);
}

TEST_CASE("a tracestate and a baggage sent in two fields each reach the handler joined") {
  run_task([]() -> task<> {
    seen_context seen;
    co_await with_server(recording(seen), [](channel& ch, server&) -> task<> {
      baton::grpc::call_options opts;
      opts.metadata = {{"traceparent", caller_parent},
                       {"tracestate", "a=1"},
                       {"baggage", "user=ada"},
                       {"tracestate", "b=2"},
                       {"baggage", "tenant=acme"}};
      (void)co_await ch.call<Msg>(unary_method, msg("x"), opts);
    });
    REQUIRE(seen.trace);
    CHECK(seen.trace->trace_id_hex() == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(seen.tracestate == "a=1,b=2");
    CHECK(seen.baggage == "user=ada,tenant=acme");
  });
}

TEST_CASE("two traceparent fields are as good as none: the handler starts a fresh trace") {
  run_task([]() -> task<> {
    seen_context seen;
    co_await with_server(recording(seen), [](channel& ch, server&) -> task<> {
      baton::grpc::call_options opts;
      opts.metadata = {{"traceparent", caller_parent},
                       {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
                       {"tracestate", "a=1"}};
      (void)co_await ch.call<Msg>(unary_method, msg("x"), opts);
    });
    REQUIRE(seen.trace);
    CHECK(seen.trace->valid());
    CHECK(seen.trace->trace_id_hex() != "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(seen.trace->trace_id_hex() != "0af7651916cd43dd8448eb211c80319c");
    CHECK(seen.tracestate.empty());
  });
}

TEST_CASE("the outgoing deadline is the tighter of the caller's and the call's own") {
  run_task([]() -> task<> {
    auto now_steady = steady_clock::now();
    auto now_system = system_clock::now();
    (void)baton::grpc::deadline_var().set(now_steady + 1s);
    {
      ::grpc::ClientContext call;
      baton::grpc::inject(call, 10s);  // the context's 1 s is tighter
      CHECK(call.deadline() <= system_clock::now() + 1s);
      CHECK(call.deadline() > now_system + 500ms);
    }
    {
      ::grpc::ClientContext call;
      baton::grpc::inject(call, 100ms);  // the call's own is tighter
      CHECK(call.deadline() <= system_clock::now() + 100ms);
    }
    (void)baton::grpc::deadline_var().set(std::nullopt);
    {
      ::grpc::ClientContext call;
      baton::grpc::inject(call);
      CHECK(call.deadline() == system_clock::time_point::max());
    }
    co_return;
  });
}

TEST_CASE("extract's tokens put the four vars back as they were") {
  run_task([]() -> task<> {
    (void)baton::extract(
        std::vector<std::pair<std::string, std::string>>{{"traceparent", caller_parent}});
    auto outer = steady_clock::now() + 5s;
    (void)baton::grpc::deadline_var().set(outer);
    ::grpc::ServerContext call;  // no metadata, no deadline
    auto tokens = baton::grpc::extract(call);
    CHECK_FALSE(baton::grpc::current_deadline());
    CHECK(baton::current_trace()->to_string() != caller_parent);
    tokens.reset();
    CHECK(baton::grpc::current_deadline() == outer);
    CHECK(baton::current_trace()->to_string() == caller_parent);
    co_return;
  });
}

TEST_CASE("a malformed traceparent is ignored: the handler starts a fresh trace, no tracestate") {
  run_task([]() -> task<> {
    seen_context seen;
    co_await with_server(recording(seen), [](channel& ch, server&) -> task<> {
      const std::vector<std::string> bad_parents = {
          "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
          "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
          "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"};
      for (const std::string& bad : bad_parents) {
        baton::grpc::call_options opts;
        opts.metadata = {{"traceparent", bad}, {"tracestate", "a=b"}};
        (void)co_await ch.call<Msg>(unary_method, msg("x"), opts);
      }
    });
    CHECK(seen.calls == 4);
    REQUIRE(seen.trace);
    CHECK(seen.trace->valid());
    CHECK(seen.trace->trace_id_hex() != "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(seen.tracestate.empty());
  });
}

TEST_CASE("baggage over 8192 bytes is cut to its longest prefix within the bound") {
  run_task([]() -> task<> {
    seen_context seen;
    std::string big;
    for (int i = 0; i < 300; ++i) {
      if (!big.empty()) big += ',';
      big += "k" + std::to_string(i) + "=" + std::string(30, 'v');
    }
    REQUIRE(big.size() > 8192);
    REQUIRE(big.size() < 14 * 1024);  // under the server's metadata cap: it reaches the handler
    co_await with_server(recording(seen), [&big](channel& ch, server&) -> task<> {
      baton::grpc::call_options opts;
      opts.metadata = {{"baggage", big}};
      (void)co_await ch.call<Msg>(unary_method, msg("x"), opts);
    });
    CHECK(seen.calls == 1);
    CHECK(seen.baggage.size() <= baton::baggage::max_bytes);
    CHECK(seen.baggage.rfind("k0=" + std::string(30, 'v'), 0) == 0);
  });
}

TEST_CASE("metadata over the server's cap is refused and the server keeps serving") {
  run_task([]() -> task<> {
    seen_context seen;
    co_await with_server(recording(seen), [](channel& ch, server& srv) -> task<> {
      baton::grpc::call_options opts;
      opts.metadata = {{"baggage", "k=" + std::string(64 * 1024, 'a')}};
      CHECK_THROWS_AS((void)co_await ch.call<Msg>(unary_method, msg("x"), opts), status_error);
      // gRPC may close that connection: a new client connects afresh, on a connection of its
      // own (not the shared one being closed).
      channel again(baton_test::connect_fresh(srv));
      Msg r = co_await again.call<Msg>(unary_method, msg("after", 3));
      CHECK(r.n() == 3);
    });
    CHECK(seen.calls == 1);
  });
}

TEST_CASE("many concurrent calls with hostile metadata each get their own context") {
  run_task([]() -> task<> {
    seen_context seen;
    co_await with_server(recording(seen), [](channel& ch, server&) -> task<> {
      std::vector<baton::task_handle<Msg>> calls;
      for (int i = 0; i < 64; ++i) {
        std::string junk(static_cast<std::size_t>(i * 97 % 4000), static_cast<char>('!' + i % 90));
        baton::grpc::call_options opts;
        opts.metadata = {{"baggage", junk}, {"traceparent", junk}, {"tracestate", junk}};
        calls.push_back(baton::spawn(ch.call<Msg>(unary_method, msg("x", i), opts)));
      }
      for (int i = 0; i < 64; ++i) CHECK((co_await calls[static_cast<std::size_t>(i)]).n() == i);
    });
    CHECK(seen.calls == 64);
  });
}
