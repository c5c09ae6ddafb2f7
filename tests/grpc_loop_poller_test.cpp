// SPDX-License-Identifier: BSL-1.0
// loop_poller: a client loop that polls a queue of its own makes its calls through it, stays
// awake for everything else, cancels calls as ever, and steps aside where it cannot poll.
#include <baton/grpc/loop_poller.hpp>

#include <baton/errors.hpp>
#include <baton/grpc/channel.hpp>
#include <baton/grpc/server.hpp>
#include <baton/loop_handle.hpp>
#include <baton/run.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>
#include <baton/to_thread.hpp>
#include <doctest/doctest.h>
#include <support/grpc_echo.hpp>
#include <support/run_test.hpp>

#include <grpcpp/create_channel.h>

#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace baton_test::grpc_names;
using baton::grpc::loop_poller;
using baton_test::run_task;

namespace {

/// A server on a loop of its own thread, serving from construction to destruction.
class server_elsewhere {
 public:
  template <class Setup>
  explicit server_elsewhere(Setup setup) : srv_(server_options{.addresses = {"127.0.0.1:0"}}) {
    setup(srv_);
    thread_ = std::thread([this] {
      baton::run([](server& s, std::promise<void>& up) -> task<> {
        s.start();
        auto serving = baton::spawn(s.serve());
        up.set_value();
        co_await serving;
      }(srv_, up_));
    });
    up_.get_future().wait();
  }
  server_elsewhere(const server_elsewhere&) = delete;
  server_elsewhere& operator=(const server_elsewhere&) = delete;
  ~server_elsewhere() {
    srv_.shutdown();
    thread_.join();
  }

  std::shared_ptr<::grpc::Channel> connect() const {
    return ::grpc::CreateChannel("127.0.0.1:" + std::to_string(srv_.port()),
                                 ::grpc::InsecureChannelCredentials());
  }

 private:
  server srv_;
  std::promise<void> up_;
  std::thread thread_;
};

void add_triple(server& s) {
  s.add_unary<Msg, Msg>(unary_method, [](Msg m) -> task<Msg> { co_return msg("", m.n() * 3); });
}

}  // namespace

TEST_CASE("calls from a loop with a poller complete through it, a hundred at once too") {
  server_elsewhere backend(add_triple);
  run_task([&]() -> task<> {
    loop_poller poller;
    CHECK(poller.active());
    channel ch(backend.connect());
    CHECK((co_await ch.call<Msg>(unary_method, msg("", 14))).n() == 42);
    std::vector<baton::task_handle<Msg>> calls;
    for (int i = 0; i < 100; ++i) {
      calls.push_back(baton::spawn(ch.call<Msg>(unary_method, msg("", i))));
    }
    for (int i = 0; i < 100; ++i) {
      CHECK((co_await calls[static_cast<std::size_t>(i)]).n() == i * 3);
    }
  });
}

TEST_CASE("a loop with a poller is still woken by its timers, to_thread and other threads") {
  run_task([]() -> task<> {
    loop_poller poller;
    REQUIRE(poller.active());
    co_await baton::sleep(std::chrono::milliseconds(2));  // a baton timer, parked in gRPC
    long sum = 0;
    for (int i = 0; i < 1000; ++i) sum += co_await baton::to_thread([i] { return long{i}; });
    CHECK(sum == 999L * 1000 / 2);
    auto here = baton::this_loop();
    std::promise<int> ran;
    std::thread other([&] {
      int n = 0;
      for (int i = 0; i < 200; ++i) n += here.call([] { return 1; }).get();
      ran.set_value(n);
    });
    auto done = ran.get_future();
    CHECK(co_await baton::to_thread([&] { return done.get(); }) == 200);
    other.join();
  });
}

TEST_CASE("cancelling a task whose call goes through the poller cancels the RPC on the server") {
  std::promise<void> entered;
  std::promise<void> cancelled;
  server_elsewhere backend([&](server& s) {
    s.add_unary<Msg, Msg>(unary_method, [&](Msg m) -> task<Msg> {
      entered.set_value();
      try {
        co_await baton::sleep(std::chrono::hours(1));
      } catch (const baton::cancelled_error&) {
        cancelled.set_value();
        throw;
      }
      co_return m;
    });
  });
  run_task([&]() -> task<> {
    loop_poller poller;
    REQUIRE(poller.active());
    channel ch(backend.connect());
    auto caller = baton::spawn(ch.call<Msg>(unary_method, msg("x")));
    co_await baton::to_thread([&] { entered.get_future().wait(); });
    caller.cancel();
    CHECK_THROWS_AS((void)co_await caller, baton::cancelled_error);
    co_await baton::to_thread([&] { cancelled.get_future().wait(); });
  });
}

TEST_CASE("a stream that outlives its poller ends with UNAVAILABLE, its call cancelled") {
  std::promise<void> ended;  // the server's handler saw the call end
  server_elsewhere backend([&](server& s) {
    s.add_bidi<Msg, Msg>(bidi_method, [&](server_stream<Msg, Msg>& st) -> task<> {
      try {
        while (auto m = co_await st.read()) co_await st.write(*m);
      } catch (...) {
        ended.set_value();
        throw;
      }
      ended.set_value();
    });
  });
  run_task([&]() -> task<> {
    channel ch(backend.connect());
    std::optional<baton::grpc::client_stream<Msg, Msg>> call;
    {
      loop_poller poller;
      REQUIRE(poller.active());
      call.emplace(co_await ch.open<Msg, Msg>(bidi_method));
      co_await call->write(msg("a", 1));
      CHECK((co_await call->read())->n() == 1);
    }  // the poller's queue is shut down: gRPC would abort on an operation started on it
    CHECK(co_await call->read() == std::nullopt);
    try {
      co_await call->write(msg("b", 2));
      FAIL("the write succeeded");
    } catch (const status_error& e) {
      CHECK(e.code() == StatusCode::UNAVAILABLE);
      CHECK(e.message().find("queue") != std::string::npos);
    }
    CHECK_THROWS_AS(co_await call->finish(), status_error);
    co_await baton::to_thread([&] { ended.get_future().wait(); });  // cancelled, not left open
  });
}

TEST_CASE("a poller steps aside on a loop of several threads or beside a polling server") {
  server_elsewhere backend(add_triple);
  baton::run_options two;
  two.threads = 2;
  run_task(
      [&]() -> task<> {
        loop_poller poller;
        CHECK_FALSE(poller.active());
        channel ch(backend.connect());
        CHECK((co_await ch.call<Msg>(unary_method, msg("", 2))).n() == 6);
      },
      std::move(two));
  run_task([&]() -> task<> {
    server_options polled{.addresses = {"127.0.0.1:0"}, .poll_on_loop = true};
    co_await with_server(
        add_triple,
        [&](channel& local, server& srv) -> task<> {
          REQUIRE(srv.polled_by_loop());
          loop_poller poller;
          CHECK_FALSE(poller.active());  // the loop polls the server's queue
          channel ch(backend.connect());
          CHECK((co_await ch.call<Msg>(unary_method, msg("", 3))).n() == 9);
          CHECK((co_await local.call<Msg>(unary_method, msg("", 4))).n() == 12);
        },
        polled);
  });
}

TEST_CASE("a poller made outside a loop is a baton error") {
  CHECK_THROWS_AS(loop_poller(), baton::runtime_error);
}
