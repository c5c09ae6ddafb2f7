// SPDX-License-Identifier: BSL-1.0
// use_task: Asio operations awaited from tasks, results, errors, cancellation, context.
#include <baton/use_task.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <chrono>
#include <string>

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;

namespace {

baton::context_var<std::string> request_id("request_id");

/// An acceptor on 127.0.0.1 with an OS-chosen port.
tcp::acceptor local_acceptor() {
  tcp::acceptor a(baton::current_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  return a;
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
      auto reader = baton::spawn([](tcp::acceptor& a) -> task<> {
        tcp::socket s = co_await a.async_accept(baton::use_task);
        std::array<char, 8> buf{};
        (void)co_await s.async_read_some(asio::buffer(buf), baton::use_task);  // never gets data
      }(acceptor));
      tcp::socket c(baton::current_executor());
      co_await c.async_connect(acceptor.local_endpoint(), baton::use_task);
      co_await baton::sleep(1ms);
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

}  // TEST_SUITE
