// SPDX-License-Identifier: BSL-1.0
// A small HTTP/1.1 client on baton tasks: for /chain's outgoing call and for the self-test.
#pragma once

#include "messages.hpp"

#include <baton/task.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <string>

namespace http_service {

using tcp = boost::asio::ip::tcp;

/// One keep-alive connection. Use it from one task at a time.
class client_connection {
 public:
  client_connection();  // on the running loop
  [[nodiscard]] baton::task<void> connect(tcp::endpoint ep);
  /// Writes req and reads the response.
  [[nodiscard]] baton::task<response> send(request& req);
  /// Writes raw bytes (a request as it comes, malformed or not) and reads the response.
  [[nodiscard]] baton::task<response> send_raw(std::string bytes);
  /// Reads a response without sending anything (e.g. to see the server close the connection).
  [[nodiscard]] baton::task<response> receive();
  tcp::socket& socket() noexcept { return sock_; }

 private:
  tcp::socket sock_;
  beast::flat_buffer buffer_;
};

/// One request on a fresh connection, closed afterwards.
[[nodiscard]] baton::task<response> fetch(tcp::endpoint ep, request req);

}  // namespace http_service
