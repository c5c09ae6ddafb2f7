// SPDX-License-Identifier: BSL-1.0
// health_service: Check and Watch as a gRPC client speaks them, the drain at shutdown, many
// watchers under flips from another thread, hostile requests, and misuse.
#include <baton/grpc/health_service.hpp>

#include <baton/errors.hpp>
#include <baton/event.hpp>
#include <baton/grpc/channel.hpp>
#include <baton/grpc/server.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/to_thread.hpp>
#include <doctest/doctest.h>
#include <support/grpc_echo.hpp>

#include "baton_grpc_health.pb.h"
#include "grpc_health_v1.pb.h"

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <optional>
#include <string>
#include <vector>

using namespace baton_test::grpc_names;
using baton::grpc::health_service;
using baton::grpc::serving_status;
using request = baton::grpc::health_wire::check_request;
using reply = baton::grpc::health_wire::check_reply;

namespace {

constexpr const char* check_method = "/grpc.health.v1.Health/Check";
constexpr const char* watch_method = "/grpc.health.v1.Health/Watch";

request for_service(std::string name) {
  request r;
  r.set_service(std::move(name));
  return r;
}

/// Check's answer as the status code and, when OK, the status.
struct check_result {
  StatusCode code = StatusCode::OK;
  reply::serving_status status = reply::UNKNOWN;
};

task<check_result> check(channel& ch, std::string service) {
  check_result out;
  try {
    reply r = co_await ch.call<reply>(check_method, for_service(std::move(service)));
    out.status = r.status();
  } catch (const status_error& e) {
    out.code = e.code();
  }
  co_return out;
}

/// An open Watch: next() is the next status sent, nullopt once the stream has ended.
class watcher {
 public:
  static task<watcher> open(channel& ch, std::string service) {
    auto call = co_await ch.open<request, reply>(watch_method);
    co_await call.write(for_service(std::move(service)));
    co_await call.writes_done();
    co_return watcher(std::move(call));
  }

  task<std::optional<reply::serving_status>> next() {
    auto r = co_await call_.read();
    if (!r) co_return std::nullopt;
    co_return r->status();
  }
  /// How the stream ended (read to its end first).
  task<StatusCode> ending() {
    try {
      co_await call_.finish();
    } catch (const status_error& e) {
      co_return e.code();
    }
    co_return StatusCode::OK;
  }

 private:
  explicit watcher(baton::grpc::client_stream<request, reply> call) : call_(std::move(call)) {}
  baton::grpc::client_stream<request, reply> call_;
};

}  // namespace

TEST_CASE("Check: the server is SERVING, a service is as last set, an unknown one NOT_FOUND") {
  in_each_mode([](server_options mode) -> task<> {
    std::optional<health_service> health;
    co_await with_server([&health](server& s) { health.emplace(s); },
                         [&health](channel& ch, server&) -> task<> {
                           auto whole = co_await check(ch, "");
                           CHECK(whole.code == StatusCode::OK);
                           CHECK(whole.status == reply::SERVING);
                           CHECK((co_await check(ch, "notes.Notes")).code == StatusCode::NOT_FOUND);
                           CHECK_FALSE(health->status("notes.Notes"));

                           health->set("notes.Notes", false);
                           CHECK((co_await check(ch, "notes.Notes")).status == reply::NOT_SERVING);
                           CHECK(health->status("notes.Notes") == serving_status::not_serving);
                           health->set("notes.Notes", true);
                           CHECK((co_await check(ch, "notes.Notes")).status == reply::SERVING);
                           CHECK((co_await check(ch, "")).status == reply::SERVING);
                         },
                         mode);
  });
}

TEST_CASE("Watch: the status now, SERVICE_UNKNOWN for a service never set, then each change") {
  in_each_mode([](server_options mode) -> task<> {
    std::optional<health_service> health;
    co_await with_server([&health](server& s) { health.emplace(s); },
                         [&health](channel& ch, server&) -> task<> {
                           auto w = co_await watcher::open(ch, "dir.Users");
                           CHECK(co_await w.next() == reply::SERVICE_UNKNOWN);
                           health->set("dir.Users", true);
                           CHECK(co_await w.next() == reply::SERVING);
                           health->set("dir.Users", true);  // no change: nothing is sent for it
                           health->set("other.Service",
                                       false);  // another service's change: nothing either
                           health->set("dir.Users", false);
                           CHECK(co_await w.next() == reply::NOT_SERVING);
                           auto whole = co_await watcher::open(ch, "");
                           CHECK(co_await whole.next() == reply::SERVING);
                         },
                         mode);
  });
}

TEST_CASE("a Watch stays open past the server's call_time_limit") {
  in_each_mode([](server_options mode) -> task<> {
    mode.call_time_limit = 300ms;
    std::optional<health_service> health;
    baton_test::parked limited;
    co_await with_server(
        [&](server& s) {
          health.emplace(s);
          s.add_unary<Msg, Msg>(unary_method, [&limited](Msg) -> task<Msg> {
            co_await limited.park();
            co_return Msg();
          });
        },
        [&](channel& ch, server&) -> task<> {
          auto w = co_await watcher::open(ch, "dir.Users");
          CHECK(co_await w.next() == reply::SERVICE_UNKNOWN);
          // A limited call younger than the Watch: once the limit has ended it, the Watch's
          // own limit, had it one, would have passed too.
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("late"))) ==
                StatusCode::DEADLINE_EXCEEDED);
          health->set("dir.Users", true);
          CHECK(co_await w.next() == reply::SERVING);
          if (limited.entered.is_set()) co_await limited.cancelled.wait();
        },
        mode);
  });
}

TEST_CASE("shutdown drains: watchers see NOT_SERVING and end while calls in flight go on") {
  in_each_mode([](server_options mode) -> task<> {
    held_call held;
    server srv(mode);
    health_service health(srv);
    health.set("notes.Notes", true);
    srv.add_unary<Msg, Msg>(unary_method, [&held](Msg m) { return held(std::move(m)); });
    srv.start();
    auto serving = baton::spawn(srv.serve());
    channel ch(baton_test::connect(srv));
    auto whole = co_await watcher::open(ch, "");
    auto notes = co_await watcher::open(ch, "notes.Notes");
    CHECK(co_await whole.next() == reply::SERVING);
    CHECK(co_await notes.next() == reply::SERVING);
    auto in_flight = baton::spawn(ch.call<Msg>(unary_method, msg("x", 3)));
    co_await held.entered.wait();

    srv.shutdown(std::chrono::hours(1));  // the drain comes first, not after the grace
    CHECK(co_await whole.next() == reply::NOT_SERVING);
    CHECK(co_await whole.next() == std::nullopt);
    CHECK(co_await whole.ending() == StatusCode::UNAVAILABLE);
    CHECK(co_await notes.next() == reply::NOT_SERVING);
    CHECK(co_await notes.next() == std::nullopt);
    CHECK(co_await notes.ending() == StatusCode::UNAVAILABLE);
    CHECK(health.status("notes.Notes") == serving_status::not_serving);
    health.set("notes.Notes", true);  // ignored from the drain on
    CHECK(health.status("notes.Notes") == serving_status::not_serving);

    CHECK_FALSE(serving.done());  // the call in flight holds serve(), uncancelled
    held.release.set();
    CHECK((co_await in_flight).n() == 3);
    co_await serving;
  });
}

TEST_CASE("a hundred watchers under flips from another thread see no repeat and end drained") {
  in_each_mode([](server_options mode) -> task<> {
    held_call held;
    server srv(mode);
    health_service health(srv);
    // A call held open until the watchers are read: serve() cannot return before, so with
    // poll_on_loop the queue the watchers' calls ride outlives them.
    srv.add_unary<Msg, Msg>(unary_method, [&held](Msg m) { return held(std::move(m)); });
    srv.start();
    auto serving = baton::spawn(srv.serve());
    channel ch(baton_test::connect(srv));
    const std::vector<std::string> services = {"a", "b", "c", "d"};
    for (const auto& s : services) health.set(s, true);

    auto holder = baton::spawn(ch.call<Msg>(unary_method, msg("hold", 1)));
    co_await held.entered.wait();
    std::vector<watcher> watchers;
    for (int i = 0; i < 100; ++i) {
      watchers.push_back(co_await watcher::open(ch, services[i % services.size()]));
      CHECK(co_await watchers.back().next() == reply::SERVING);
    }
    // Flips from a thread outside the loop while the watchers are woken on it.
    co_await baton::to_thread([&] {
      for (int round = 0; round < 200; ++round) {
        health.set(services[round % services.size()], round % 3 != 0);
      }
    });
    srv.shutdown(std::chrono::hours(1));  // a grace: with none, calls are cut, watches too

    for (auto& w : watchers) {
      std::vector<reply::serving_status> seen;
      while (auto s = co_await w.next()) seen.push_back(*s);
      REQUIRE_FALSE(seen.empty());
      CHECK(seen.back() == reply::NOT_SERVING);
      for (std::size_t i = 1; i < seen.size(); ++i) CHECK(seen[i] != seen[i - 1]);
      CHECK(co_await w.ending() == StatusCode::UNAVAILABLE);
    }
    held.release.set();
    CHECK((co_await holder).n() == 1);
    co_await serving;
  });
}

TEST_CASE("a Check that is not a check_request, or too big, is refused and serving goes on") {
  in_each_mode([](server_options mode) -> task<> {
    mode.max_message_bytes = 4096;
    std::optional<health_service> health;
    co_await with_server(
        [&health](server& s) { health.emplace(s); },
        [&health](channel& ch, server&) -> task<> {
          const char junk[] = {'\x0a', '\x7f', 'x'};  // a string field longer than its bytes
          ::grpc::Slice slice(junk, sizeof junk);
          ::grpc::ByteBuffer bytes(&slice, 1);
          try {
            (void)co_await ch.call<reply>(check_method, bytes);
            FAIL("the call succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::INVALID_ARGUMENT);
          }
          try {
            (void)co_await ch.call<reply>(check_method, for_service(std::string(8192, 's')));
            FAIL("the call succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::RESOURCE_EXHAUSTED);
          }
          CHECK((co_await check(ch, "")).status == reply::SERVING);
          CHECK_FALSE(health->status(std::string(8192, 's')));  // clients never add a name
        },
        mode);
  });
}

TEST_CASE("the health service outlives its object; made after start() it is refused") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          health_service gone(s);
          gone.set("kept", false);
        },  // destroyed here: the handlers keep the table
        [](channel& ch, server& s) -> task<> {
          CHECK((co_await check(ch, "kept")).status == reply::NOT_SERVING);
          CHECK_THROWS_AS(health_service late(s), baton::runtime_error);
        },
        mode);
  });
}

TEST_CASE("check_health asks a server as a client: serving, not serving, unknown, none there") {
  in_each_mode([](server_options mode) -> task<> {
    std::optional<health_service> health;
    co_await with_server(
        [&health](server& s) {
          health.emplace(s);
          health->set("up", true);
          health->set("down", false);
        },
        [](channel& ch, server&) -> task<> {
          CHECK(co_await baton::grpc::check_health(ch, "") == serving_status::serving);
          CHECK(co_await baton::grpc::check_health(ch, "up") == serving_status::serving);
          CHECK(co_await baton::grpc::check_health(ch, "down") == serving_status::not_serving);
          CHECK(co_await status_of(baton::grpc::check_health(ch, "never")) ==
                StatusCode::NOT_FOUND);
        },
        mode);
    // A server without the health service says UNIMPLEMENTED.
    co_await with_server(
        [](server&) {},
        [](channel& ch, server&) -> task<> {
          CHECK(co_await status_of(baton::grpc::check_health(ch, "")) == StatusCode::UNIMPLEMENTED);
        },
        mode);
  });
}

TEST_CASE("with gRPC's own health.proto compiled in, the service registers and its messages read") {
  in_each_mode([](server_options mode) -> task<> {
    std::optional<health_service> health;
    co_await with_server(
        [&health](server& s) {
          // The descriptors of grpc.health.v1.Health are in the program: the registration's
          // check sees the same methods, of the same kinds.
          REQUIRE(grpc::health::v1::HealthCheckRequest::descriptor() != nullptr);
          health.emplace(s);
          health->set("notes.Notes", false);
        },
        [](channel& ch, server&) -> task<> {
          grpc::health::v1::HealthCheckRequest req;
          req.set_service("notes.Notes");
          auto r = co_await ch.call<grpc::health::v1::HealthCheckResponse>(check_method, req);
          CHECK(r.status() == grpc::health::v1::HealthCheckResponse::NOT_SERVING);
          req.set_service("");
          r = co_await ch.call<grpc::health::v1::HealthCheckResponse>(check_method, req);
          CHECK(r.status() == grpc::health::v1::HealthCheckResponse::SERVING);
        },
        mode);
  });
}
