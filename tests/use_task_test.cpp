// SPDX-License-Identifier: BSL-1.0
// use_task: Asio operations awaited from tasks, results, errors, cancellation, context.
#include <baton/use_task.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>
#include <support/settle.hpp>
#include <support/suspended_at.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <string>

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;
using baton_test::settle;

namespace {

baton::context_var<std::string> request_id("request_id");

/// An acceptor on 127.0.0.1 with an OS-chosen port.
tcp::acceptor local_acceptor() {
  tcp::acceptor a(baton::current_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  return a;
}

/// A loopback endpoint where nothing listens (connecting fails with connection_refused).
tcp::endpoint closed_endpoint() {
  tcp::acceptor a(baton::current_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  return a.local_endpoint();  // the port is free again once `a` closes
}

task<> echo_once(tcp::acceptor& acceptor) {
  tcp::socket s = co_await acceptor.async_accept(baton::use_task);
  std::array<char, 64> buf{};
  std::size_t n = co_await s.async_read_some(asio::buffer(buf), baton::use_task);
  co_await asio::async_write(s, asio::buffer(buf.data(), n), baton::use_task);
}

}  // namespace

TEST_SUITE("use_task") {
  TEST_CASE("a timer wait completes into the task") {
    run_task([]() -> task<> {
      asio::steady_timer t(baton::current_executor(), 1ms);
      co_await t.async_wait(baton::use_task);
      CHECK(t.expiry() <= asio::steady_timer::clock_type::now());
    });
  }

  TEST_CASE("a TCP round trip over loopback returns values like use_awaitable") {
    run_task([]() -> task<> {
      (void)request_id.set("r-1");
      auto acceptor = local_acceptor();
      auto server = baton::spawn(echo_once(acceptor));
      tcp::socket c(baton::current_executor());
      co_await c.async_connect(acceptor.local_endpoint(), baton::use_task);
      std::size_t written =
          co_await asio::async_write(c, asio::buffer(std::string("ping")), baton::use_task);
      CHECK(written == 4);
      std::array<char, 4> reply{};
      std::size_t got = co_await asio::async_read(c, asio::buffer(reply), baton::use_task);
      CHECK(got == 4);
      CHECK(std::string(reply.data(), 4) == "ping");
      CHECK(request_id.get() == "r-1");  // the context survived every suspension
      co_await server;
    });
  }

  TEST_CASE("a failing error_code is thrown as system_error") {
    run_task([]() -> task<> {
      tcp::socket c(baton::current_executor());
      // Port 1 on loopback: nothing listens there.
      CHECK_THROWS_AS(co_await c.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), 1),
                                               baton::use_task),
                      boost::system::system_error);
    });
  }

  TEST_CASE("cancelling the task cancels a pending socket read at once") {
    run_task([]() -> task<> {
      auto acceptor = local_acceptor();
      bool accepted = false;
      auto reader = baton::spawn([](tcp::acceptor& a, bool& done_accepting) -> task<> {
        tcp::socket s = co_await a.async_accept(baton::use_task);
        done_accepting = true;
        std::array<char, 8> buf{};
        (void)co_await s.async_read_some(asio::buffer(buf), baton::use_task);  // never gets data
      }(acceptor, accepted));
      tcp::socket c(baton::current_executor());
      co_await c.async_connect(acceptor.local_endpoint(), baton::use_task);
      // Past the accept and suspended again: the only operation left is the read.
      REQUIRE(
          co_await baton_test::suspended_at(reader, "asio operation", [&] { return accepted; }));
      reader.cancel();
      CHECK_THROWS_AS(co_await reader, baton::cancelled_error);
    });
  }

  TEST_CASE("a post through use_task resumes the task with no value") {
    run_task([]() -> task<> {
      co_await asio::post(baton::current_executor(), baton::use_task);
      CHECK(true);
    });
  }

  TEST_CASE("current_executor outside a loop throws runtime_error") {
    CHECK_THROWS_AS((void)baton::current_executor(), baton::runtime_error);
  }

  TEST_CASE("many tasks each keep their own context across Asio waits") {
    run_task([]() -> task<> {
      std::vector<baton::task_handle<bool>> hs;
      for (int i = 0; i < 200; ++i) {
        hs.push_back(baton::spawn([](int k) -> task<bool> {
          (void)request_id.set("req-" + std::to_string(k));
          asio::steady_timer t(baton::current_executor(), std::chrono::microseconds(k % 7));
          co_await t.async_wait(baton::use_task);
          co_return request_id.get() == "req-" + std::to_string(k);
        }(i)));
      }
      for (auto& h : hs) CHECK(co_await h);
    });
  }

  // Every completion-token form that Boost 1.81's Asio operations use.

  TEST_CASE("async_resolve returns the results and a range async_connect the endpoint") {
    run_task([]() -> task<> {
      auto acceptor = local_acceptor();
      auto server = baton::spawn(echo_once(acceptor));
      tcp::resolver resolver(baton::current_executor());
      tcp::resolver::results_type results = co_await resolver.async_resolve(
          "127.0.0.1", std::to_string(acceptor.local_endpoint().port()), baton::use_task);
      REQUIRE(results.size() == 1);
      tcp::socket c(baton::current_executor());
      tcp::endpoint connected = co_await asio::async_connect(c, results, baton::use_task);
      CHECK(connected == acceptor.local_endpoint());
      co_await asio::async_write(c, asio::buffer(std::string("hi")), baton::use_task);
      std::array<char, 2> reply{};
      co_await asio::async_read(c, asio::buffer(reply), baton::use_task);
      CHECK(std::string(reply.data(), 2) == "hi");
      co_await server;
    });
  }

  TEST_CASE("as_tuple(use_task) returns the error_code with the values instead of throwing") {
    run_task([]() -> task<> {
      tcp::socket c(baton::current_executor());
      auto [ec] = co_await c.async_connect(closed_endpoint(), asio::as_tuple(baton::use_task));
      CHECK(ec == asio::error::connection_refused);
      asio::steady_timer t(baton::current_executor(), 1ms);
      auto [wait_ec] = co_await t.async_wait(asio::as_tuple(baton::use_task));
      CHECK(!wait_ec);
    });
  }

  TEST_CASE("redirect_error(use_task, ec) stores the error_code instead of throwing") {
    run_task([]() -> task<> {
      tcp::socket c(baton::current_executor());
      boost::system::error_code ec;
      co_await c.async_connect(closed_endpoint(), asio::redirect_error(baton::use_task, ec));
      CHECK(ec == asio::error::connection_refused);
      auto acceptor = local_acceptor();
      auto server = baton::spawn(echo_once(acceptor));
      tcp::socket d(baton::current_executor());
      co_await d.async_connect(acceptor.local_endpoint(), baton::use_task);
      std::size_t n = co_await asio::async_write(d, asio::buffer(std::string("abc")),
                                                 asio::redirect_error(baton::use_task, ec));
      CHECK(!ec);
      CHECK(n == 3);
      co_await server;
    });
  }

  TEST_CASE("an experimental::channel sends and receives through use_task") {
    run_task([]() -> task<> {
      using channel = asio::experimental::channel<void(boost::system::error_code, int)>;
      channel ch(baton::current_executor(), 1);
      auto consumer = baton::spawn([](channel& c) -> task<int> {
        int sum = 0;
        for (int i = 0; i < 3; ++i) sum += co_await c.async_receive(baton::use_task);
        co_return sum;
      }(ch));
      for (int v : {1, 2, 3})
        co_await ch.async_send(boost::system::error_code{}, v, baton::use_task);
      CHECK(co_await consumer == 6);
      ch.close();
      CHECK_THROWS_AS(co_await ch.async_receive(baton::use_task), boost::system::system_error);
    });
  }

  TEST_CASE("a parallel_group of deferred operations completes into use_task") {
    run_task([]() -> task<> {
      asio::steady_timer fast(baton::current_executor(), 1ms);
      asio::steady_timer slow(baton::current_executor(), std::chrono::hours(1));
      auto [order, fast_ec, slow_ec] =
          co_await asio::experimental::make_parallel_group(fast.async_wait(asio::deferred),
                                                           slow.async_wait(asio::deferred))
              .async_wait(asio::experimental::wait_for_one(), baton::use_task);
      CHECK(order[0] == 0);  // the fast timer finished first, the slow one was cancelled
      CHECK(!fast_ec);
      CHECK(slow_ec == asio::error::operation_aborted);
    });
  }

  TEST_CASE("co_spawn of an asio::awaitable completes into use_task with its value") {
    run_task([]() -> task<> {
      (void)request_id.set("r-9");
      int v = co_await asio::co_spawn(
          baton::current_executor(), []() -> asio::awaitable<int> { co_return 7; },
          baton::use_task);
      CHECK(v == 7);
      CHECK(request_id.get() == "r-9");
      CHECK_THROWS_AS(co_await asio::co_spawn(
                          baton::current_executor(),
                          []() -> asio::awaitable<void> {
                            throw std::runtime_error("inside");
                            co_return;
                          },
                          baton::use_task),
                      std::runtime_error);
    });
  }

  TEST_CASE("use_task.as_default_on makes use_task the default token of an I/O object") {
    run_task([]() -> task<> {
      auto acceptor = baton::use_task.as_default_on(local_acceptor());
      auto server = baton::spawn([](decltype(acceptor)& a) -> task<> {
        auto s = co_await a.async_accept();  // no token: use_task
        std::array<char, 4> buf{};
        std::size_t n = co_await asio::async_read(s, asio::buffer(buf));
        co_await asio::async_write(s, asio::buffer(buf.data(), n));
      }(acceptor));
      baton::use_task_t::as_default_on_t<tcp::socket> c(baton::current_executor());
      co_await c.async_connect(acceptor.local_endpoint());
      co_await asio::async_write(c, asio::buffer(std::string("pong")));
      std::array<char, 4> reply{};
      co_await asio::async_read(c, asio::buffer(reply));
      CHECK(std::string(reply.data(), 4) == "pong");
      co_await server;
    });
  }

  TEST_CASE("cancelling a task suspended in a redirect_error read stops the read at once") {
    run_task([]() -> task<> {
      auto acceptor = local_acceptor();
      tcp::socket peer(baton::current_executor());
      tcp::socket s(baton::current_executor());
      auto accepting = baton::spawn([](tcp::acceptor& a, tcp::socket& out) -> task<> {
        out = co_await a.async_accept(baton::use_task);
      }(acceptor, s));
      co_await peer.async_connect(acceptor.local_endpoint(), baton::use_task);
      co_await accepting;
      auto reader = baton::spawn([](tcp::socket& sock) -> task<> {
        std::array<char, 8> buf{};
        boost::system::error_code ec;
        // redirect_error names the token's return_type: the read runs as a nested task.
        (void)co_await sock.async_read_some(asio::buffer(buf),
                                            asio::redirect_error(baton::use_task, ec));
      }(s));
      co_await settle();
      const auto tasks = baton::all_tasks();
      CHECK(std::any_of(tasks.begin(), tasks.end(),
                        [](const baton::task_info& t) { return t.awaiting == "asio operation"; }));
      reader.cancel();
      CHECK_THROWS_AS(co_await reader, baton::cancelled_error);
    });
  }

}  // TEST_SUITE
