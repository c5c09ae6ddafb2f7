// SPDX-License-Identifier: BSL-1.0
// client_connection and fetch().
#include "client.hpp"

#include <baton/executor.hpp>
#include <baton/use_task.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

namespace http_service {

client_connection::client_connection() : sock_(baton::current_executor()) {}

baton::task<void> client_connection::connect(tcp::endpoint ep) {
  co_await sock_.async_connect(ep, baton::use_task);
  sock_.set_option(tcp::no_delay(true));
}

baton::task<response> client_connection::receive() {
  response res;
  co_await http::async_read(sock_, buffer_, res, baton::use_task);
  co_return res;
}

baton::task<response> client_connection::send(request& req) {
  req.prepare_payload();
  co_await http::async_write(sock_, req, baton::use_task);
  co_return co_await receive();
}

baton::task<response> client_connection::send_raw(std::string bytes) {
  co_await boost::asio::async_write(sock_, boost::asio::buffer(bytes), baton::use_task);
  co_return co_await receive();
}

baton::task<response> fetch(tcp::endpoint ep, request req) {
  client_connection c;
  co_await c.connect(ep);
  req.keep_alive(false);
  response res = co_await c.send(req);
  boost::system::error_code ec;
  c.socket().shutdown(tcp::socket::shutdown_both, ec);
  co_return res;
}

}  // namespace http_service
