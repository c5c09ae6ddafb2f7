// SPDX-License-Identifier: BSL-1.0
// use_task with Beast: tcp_stream, HTTP, WebSocket and TLS handshakes, each over loopback.
// (Kept small: Beast and OpenSSL templates make this the slowest test file to compile; see
// tests/meson.build for its optimisation level under the sanitizers.)
#include <baton/use_task.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>

#include <array>
#include <chrono>
#include <string>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace websocket = beast::websocket;
using asio::ip::tcp;
using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;

namespace {

baton::context_var<std::string> request_id("request_id");

// A self-signed P-256 certificate for "localhost" (valid until 2126) and its key: test data
// only, made with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1`.
constexpr const char* test_cert = R"(-----BEGIN CERTIFICATE-----
MIIBfzCCASWgAwIBAgIUFfCsq8dP3nuMYkcX3B6KIvTM1qQwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNDE1MTMzNVoYDzIxMjYxMTEw
MTUxMzM1WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQTwEui1cVVW4kY89fCFcruwcsAs7fvil2S1nH7Pjc7kjaq+C0Ziivp
XfMvPC06LBNtV6WU3N7ujvim0C+4gZfNo1MwUTAdBgNVHQ4EFgQUibpWLX//e0Y1
B2/lhbsrg+9Y1xwwHwYDVR0jBBgwFoAUibpWLX//e0Y1B2/lhbsrg+9Y1xwwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAkrA8em/CsgpJ9SVo0lKb
kRgRD4TB5B467jvVu8jxNboCIBXnurI6z0GPCY6o3yAYCFFbEo86pPdx7IUbMzK1
QZAf
-----END CERTIFICATE-----
)";
constexpr const char* test_key = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgTtyT0i5koq/tuBfE
oKKSaMwnaR0CNUHZvUPqThJXK+ChRANCAAQTwEui1cVVW4kY89fCFcruwcsAs7fv
il2S1nH7Pjc7kjaq+C0ZiivpXfMvPC06LBNtV6WU3N7ujvim0C+4gZfN
-----END PRIVATE KEY-----
)";

ssl::context server_tls() {
  ssl::context ctx(ssl::context::tls_server);
  ctx.use_certificate_chain(asio::buffer(std::string(test_cert)));
  ctx.use_private_key(asio::buffer(std::string(test_key)), ssl::context::pem);
  return ctx;
}

ssl::context client_tls() {
  ssl::context ctx(ssl::context::tls_client);
  ctx.add_certificate_authority(asio::buffer(std::string(test_cert)));
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

tcp::acceptor local_acceptor() {
  return tcp::acceptor(baton::current_executor(),
                       tcp::endpoint(asio::ip::address_v4::loopback(), 0));
}

/// The acceptor's endpoint as resolver results (what a client's async_resolve returns).
task<tcp::resolver::results_type> resolve(const tcp::acceptor& a) {
  tcp::resolver r(baton::current_executor());
  co_return co_await r.async_resolve("127.0.0.1", std::to_string(a.local_endpoint().port()),
                                     baton::use_task);
}

/// Answers one HTTP request on `stream` with its target as the body.
template <class Stream>
task<> answer_one(Stream& stream) {
  beast::flat_buffer buf;
  http::request<http::string_body> req;
  co_await http::async_read(stream, buf, req, baton::use_task);
  http::response<http::string_body> res(http::status::ok, req.version());
  res.body() = "you asked for " + std::string(req.target());
  res.prepare_payload();
  co_await http::async_write(stream, res, baton::use_task);
}

/// Sends GET `target` on `stream` and returns the response body.
template <class Stream>
task<std::string> get(Stream& stream, std::string target) {
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, "localhost");
  co_await http::async_write(stream, req, baton::use_task);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  co_await http::async_read(stream, buf, res, baton::use_task);
  co_return res.body();
}

}  // namespace

TEST_SUITE("use_task with Beast") {
  TEST_CASE("tcp_stream connects to resolver results and carries an HTTP exchange") {
    run_task([]() -> task<> {
      (void)request_id.set("r-1");
      auto acceptor = local_acceptor();
      auto server = baton::spawn([](tcp::acceptor& a) -> task<> {
        beast::tcp_stream s(co_await a.async_accept(baton::use_task));
        co_await answer_one(s);
      }(acceptor));
      beast::tcp_stream client(baton::current_executor());
      tcp::endpoint ep = co_await client.async_connect(co_await resolve(acceptor), baton::use_task);
      CHECK(ep == acceptor.local_endpoint());
      CHECK(co_await get(client, "/a") == "you asked for /a");
      CHECK(request_id.get() == "r-1");
      co_await server;
    });
  }

  TEST_CASE("a tcp_stream timeout is thrown as system_error carrying beast::error::timeout") {
    run_task([]() -> task<> {
      auto acceptor = local_acceptor();
      beast::tcp_stream client(baton::current_executor());
      co_await client.async_connect(acceptor.local_endpoint(), baton::use_task);
      tcp::socket quiet = co_await acceptor.async_accept(baton::use_task);  // never writes
      client.expires_after(10ms);
      beast::flat_buffer buf;
      http::response<http::string_body> res;
      try {
        co_await http::async_read(client, buf, res, baton::use_task);
        FAIL("the read should time out");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == beast::error::timeout);
      }
    });
  }

  TEST_CASE("cancelling a task suspended in a Beast read stops the read") {
    run_task([]() -> task<> {
      auto acceptor = local_acceptor();
      beast::tcp_stream client(baton::current_executor());
      co_await client.async_connect(acceptor.local_endpoint(), baton::use_task);
      tcp::socket quiet = co_await acceptor.async_accept(baton::use_task);
      auto reader = baton::spawn([](beast::tcp_stream& s) -> task<> {
        beast::flat_buffer buf;
        http::response<http::string_body> res;
        co_await http::async_read(s, buf, res, baton::use_task);
      }(client));
      for (int i = 0; i < 8; ++i) co_await baton::sleep(0ms);  // let it reach the read
      reader.cancel();
      CHECK_THROWS_AS(co_await reader, baton::cancelled_error);
    });
  }

  TEST_CASE("a websocket handshake, a message each way and a close complete through use_task") {
    run_task([]() -> task<> {
      auto acceptor = local_acceptor();
      auto server = baton::spawn([](tcp::acceptor& a) -> task<> {
        websocket::stream<beast::tcp_stream> ws(co_await a.async_accept(baton::use_task));
        co_await ws.async_accept(baton::use_task);
        beast::flat_buffer buf;
        std::size_t n = co_await ws.async_read(buf, baton::use_task);
        co_await ws.async_write(asio::buffer("echo: " + beast::buffers_to_string(buf.data())),
                                baton::use_task);
        CHECK(n == 5);
        buf.clear();
        // The client's close arrives as a read that fails with websocket::error::closed.
        boost::system::error_code ec;
        co_await ws.async_read(buf, asio::redirect_error(baton::use_task, ec));
        CHECK(ec == websocket::error::closed);
      }(acceptor));
      websocket::stream<beast::tcp_stream> ws(baton::current_executor());
      co_await beast::get_lowest_layer(ws).async_connect(co_await resolve(acceptor),
                                                         baton::use_task);
      co_await ws.async_handshake("localhost", "/chat", baton::use_task);
      co_await ws.async_write(asio::buffer(std::string("hello")), baton::use_task);
      beast::flat_buffer buf;
      co_await ws.async_read(buf, baton::use_task);
      CHECK(beast::buffers_to_string(buf.data()) == "echo: hello");
      co_await ws.async_close(websocket::close_code::normal, baton::use_task);
      co_await server;
    });
  }

  TEST_CASE("an ssl_stream handshake, an exchange and a shutdown complete through use_task") {
    run_task([]() -> task<> {
      ssl::context server_ctx = server_tls();
      ssl::context client_ctx = client_tls();
      auto acceptor = local_acceptor();
      auto server = baton::spawn([](tcp::acceptor& a, ssl::context& ctx) -> task<> {
        beast::ssl_stream<beast::tcp_stream> s(co_await a.async_accept(baton::use_task), ctx);
        co_await s.async_handshake(ssl::stream_base::server, baton::use_task);
        std::array<char, 5> buf{};
        co_await asio::async_read(s, asio::buffer(buf), baton::use_task);
        co_await asio::async_write(s, asio::buffer(buf), baton::use_task);
        co_await s.async_shutdown(baton::use_task);
      }(acceptor, server_ctx));
      beast::ssl_stream<beast::tcp_stream> client(baton::current_executor(), client_ctx);
      client.set_verify_callback(ssl::host_name_verification("localhost"));
      co_await beast::get_lowest_layer(client).async_connect(co_await resolve(acceptor),
                                                             baton::use_task);
      co_await client.async_handshake(ssl::stream_base::client, baton::use_task);
      co_await asio::async_write(client, asio::buffer(std::string("hello")), baton::use_task);
      std::array<char, 5> reply{};
      co_await asio::async_read(client, asio::buffer(reply), baton::use_task);
      CHECK(std::string(reply.data(), 5) == "hello");
      co_await client.async_shutdown(baton::use_task);
      co_await server;
    });
  }

  TEST_CASE("a TLS handshake with an untrusted certificate throws system_error") {
    run_task([]() -> task<> {
      ssl::context server_ctx = server_tls();
      ssl::context client_ctx(ssl::context::tls_client);  // trusts nothing
      client_ctx.set_verify_mode(ssl::verify_peer);
      auto acceptor = local_acceptor();
      auto server = baton::spawn([](tcp::acceptor& a, ssl::context& ctx) -> task<> {
        ssl::stream<tcp::socket> s(co_await a.async_accept(baton::use_task), ctx);
        boost::system::error_code ec;
        co_await s.async_handshake(ssl::stream_base::server,
                                   asio::redirect_error(baton::use_task, ec));
        CHECK(ec);
      }(acceptor, server_ctx));
      ssl::stream<tcp::socket> client(baton::current_executor(), client_ctx);
      co_await client.next_layer().async_connect(acceptor.local_endpoint(), baton::use_task);
      CHECK_THROWS_AS(co_await client.async_handshake(ssl::stream_base::client, baton::use_task),
                      boost::system::system_error);
      client.next_layer().close();
      co_await server;
    });
  }
}  // TEST_SUITE
