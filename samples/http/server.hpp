// SPDX-License-Identifier: BSL-1.0
// server: the HTTP/1.1 server; one task per connection, one task and one context per request.
#pragma once

// Contract:
//   listen()    binds and listens (port 0: the OS chooses); call it on a loop thread.
//   run()       serves until stop(), then shuts down gracefully: stops accepting, closes the
//               idle keep-alive connections, lets the requests in flight finish and answers
//               them with `Connection: close`, and returns when every connection has ended.
//               Whatever is still running after `shutdown_grace` is cancelled (its client
//               gets no response, so nothing it sent was acknowledged).
//   stop()      begins the shutdown; any thread, any number of times.
// Per request (serve_request), in a task of its own whose context is a copy of the
// connection's: X-Request-Id (else a new id), X-User (else "anonymous"), a deadline from
// X-Deadline-Ms (default 2 s, capped), and the W3C trace context (baton::extract, then
// baton::start_span) are set as context vars; the handler runs under baton::wait_for until
// the deadline (504 on time-out); the response carries X-Request-Id and the request's span as
// `traceparent`.
// Malformed input: a header section over `header_limit` gets 431, a body over `body_limit`
// 413, anything else the parser rejects 400, a request that does not arrive in `read_timeout`
// 408; each then closes the connection gracefully (lingering close), the server carries on.
// Thread-safety: run() once; stop(), in_flight() and local_endpoint() from any thread once
// listen() returned. Connections and requests run on any loop thread.
//
// Who runs what, in which context (->: a new task or job, in a copy of its parent's context):
//   accept loop
//     -> connection task        sets conn=N
//          -> request task      sets request_id, user, deadline; extract + start_span
//               route()         awaited, so in the request task's context, under wait_for
//                 -> sub-tasks          (a task_group)
//                 -> to_thread jobs     (the blocking pool: SQLite)
//                 outgoing HTTP call    (inject: traceparent, tracestate, baggage)

#include "messages.hpp"

#include <baton/event.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace http_service {

class notes_db;
using tcp = boost::asio::ip::tcp;

struct server_options {
  boost::asio::ip::address address = boost::asio::ip::make_address_v4("127.0.0.1");
  unsigned short port = 8080;
  std::uint32_t header_limit = 8 * 1024;  // request line + header fields
  std::uint64_t body_limit = 64 * 1024;
  std::chrono::milliseconds default_deadline{2000};
  std::chrono::milliseconds max_deadline{10000};
  std::chrono::milliseconds idle_timeout{30000};  // keep-alive connection without a request
  std::chrono::milliseconds read_timeout{10000};  // from a request's first byte to its end
  std::chrono::milliseconds write_timeout{10000};
  std::chrono::milliseconds shutdown_grace{5000};
};

class server {
 public:
  server(server_options opts, notes_db& db);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  void listen();
  [[nodiscard]] baton::task<void> run();
  void stop() noexcept;

  tcp::endpoint local_endpoint() const;
  /// Requests being handled now (read, not yet answered).
  std::size_t in_flight() const noexcept { return in_flight_.load(std::memory_order_relaxed); }
  std::uint64_t served() const noexcept { return served_.load(std::memory_order_relaxed); }
  notes_db& db() noexcept { return db_; }
  const server_options& options() const noexcept { return opts_; }

 private:
  struct connection_slot;

  baton::task<void> accept_loop();
  void start_connection(tcp::socket sock);
  baton::task<void> connection(tcp::socket sock, std::shared_ptr<connection_slot> slot);
  baton::task<void> serve_connection(tcp::socket& sock, beast::flat_buffer& buffer,
                                     connection_slot& slot);
  baton::task<bool> serve_request(tcp::socket& sock, request req);
  baton::task<void> reject(tcp::socket& sock, http::status status, std::string why);
  baton::task<void> wait_drained();

  bool enter_idle(connection_slot& slot);
  bool leave_idle(connection_slot& slot);
  void connection_ended(connection_slot& slot);
  /// Cancels connections: the idle ones, or all of them.
  void cancel_connections(bool idle_only);

  server_options opts_;
  notes_db& db_;
  std::optional<tcp::acceptor> acceptor_;
  tcp::endpoint endpoint_;

  baton::event stop_requested_;
  baton::event drained_;                    // set once stopping and no connection is left
  std::atomic<bool> stopping_flag_{false};  // a copy of stopping_ for lock-free reads

  std::mutex mutex_;  // guards the fields below and every connection_slot
  bool stopping_ = false;
  std::uint64_t next_connection_ = 0;
  std::unordered_map<std::uint64_t, std::shared_ptr<connection_slot>> connections_;

  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::uint64_t> served_{0};
};

/// Waits for SIGINT or SIGTERM on `signals` (an Asio operation awaited with baton::use_task),
/// then calls srv.stop(). Cancel it to stop waiting.
[[nodiscard]] baton::task<void> stop_on_signal(boost::asio::signal_set& signals, server& srv);

}  // namespace http_service
