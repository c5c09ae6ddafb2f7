// SPDX-License-Identifier: BSL-1.0
// server: the HTTP/1.1 server; one task per connection, one task and one context per request.
#pragma once

// Contract:
//   listen()    binds and listens (port 0: the OS chooses); call it on a loop thread.
//   run()       serves until stop(), then shuts down gracefully (docs/http-service.md,
//               "Graceful shutdown"): stops accepting; lets the requests in flight finish;
//               answers a request whose reading begins after stop() with 503, `Retry-After`
//               and `Connection: close`, without running it; and returns when every
//               connection has ended. Every response built after stop() says `Connection:
//               close`, and a connection closes only after such a response (then lingering:
//               it reads what the client still sends until the client closes, at most 1 s),
//               or after waiting `shutdown_last_call` for a request that did not come, or when
//               its client closed. Whatever is still running after `shutdown_grace` is
//               cancelled (its client gets no response, so nothing it sent was acknowledged).
//   stop()      begins the shutdown; any thread, any number of times.
// Per request (serve_request), in a task of its own whose context is a copy of the
// connection's: X-Request-Id (else a new id), X-User (else "anonymous"), a deadline from
// X-Deadline-Ms (default 2 s, capped), and the W3C trace context (baton::extract, then
// baton::start_span) are set as context vars; the handler runs under baton::wait_for until
// the deadline (504 on time-out); the response carries X-Request-Id and the request's span as
// `traceparent`.
// Overload (docs/http-service.md, "Overload"):
//   connections  at most max_connections open (0: RLIMIT_NOFILE's soft limit minus 64). At
//                the cap, or when accept fails for want of descriptors (EMFILE, ENFILE,
//                ENOBUFS, ENOMEM), the accept loop closes the 16 connections that have waited
//                longest for a request (their clients sent nothing, so nothing is lost) and
//                pauses 5 ms; with none to close it pauses, backing off from 5 ms to 500 ms. One
//                warning starts such an episode and one line ends it, when the backlog is empty
//                again.
//   requests     at most max_in_flight read and not yet answered; one more gets 503 with
//                `Retry-After`, and its connection stays usable.
//   responses    a page of GET /notes is at most page_limit bytes (it says where the next
//                page starts); all pages held at once take at most response_memory bytes,
//                and a page that does not fit in that gets 503 with `Retry-After`.
// Memory per request: the header (header_limit) and body (body_limit) read, plus the response:
// under 8 KiB for every endpoint but GET /notes, whose page is at most page_limit.
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
#include <utility>

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
  // At shutdown, how long a keep-alive connection waiting for its next request is kept open
  // for it (the request is answered 503 + Connection: close); at most shutdown_grace.
  std::chrono::milliseconds shutdown_last_call{1000};
  std::size_t max_connections = 0;  // 0: RLIMIT_NOFILE's soft limit minus 64
  std::size_t max_in_flight = 1024;
  std::size_t page_limit = 256 * 1024;             // at least 2 * body_limit + 4 KiB
  std::size_t response_memory = 64 * 1024 * 1024;  // all pages held at once
  std::chrono::seconds retry_after{1};
};

/// Bytes of response memory held by one request until its response is written (or dropped).
class response_lease {
 public:
  response_lease() = default;
  response_lease(std::atomic<std::size_t>& pool, std::size_t bytes) noexcept
      : pool_(&pool), bytes_(bytes) {}
  response_lease(response_lease&& o) noexcept
      : pool_(std::exchange(o.pool_, nullptr)), bytes_(o.bytes_) {}
  response_lease& operator=(response_lease&& o) noexcept {
    release();
    pool_ = std::exchange(o.pool_, nullptr);
    bytes_ = o.bytes_;
    return *this;
  }
  ~response_lease() { release(); }
  /// Keeps `bytes` of the reservation (fewer than reserved), gives the rest back.
  void shrink_to(std::size_t bytes) noexcept;

 private:
  void release() noexcept;
  std::atomic<std::size_t>* pool_ = nullptr;
  std::size_t bytes_ = 0;
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
  /// The connection cap in force (set by listen()).
  std::size_t connection_cap() const noexcept { return connection_cap_; }
  /// Reserves `bytes` of response memory; nullopt when response_memory would be exceeded.
  std::optional<response_lease> reserve_response(std::size_t bytes) noexcept;
  notes_db& db() noexcept { return db_; }
  const server_options& options() const noexcept { return opts_; }

 private:
  struct connection_slot;

  baton::task<void> accept_loop();
  bool at_cap();
  /// Cancels the (at most) n connections that have waited longest for a request; returns how
  /// many. They count as open until they have closed.
  std::size_t close_idle(std::size_t n);
  void start_connection(tcp::socket sock);
  baton::task<void> connection(tcp::socket sock, std::shared_ptr<connection_slot> slot);
  baton::task<void> serve_connection(tcp::socket& sock, beast::flat_buffer& buffer,
                                     connection_slot& slot);
  /// Whether a request read is run, or answered 503 without running it.
  enum class admission { admitted, over_capacity, shutting_down };
  baton::task<bool> serve_request(tcp::socket& sock, request req, admission how);
  baton::task<void> reject(tcp::socket& sock, http::status status, std::string why);
  baton::task<void> wait_drained();

  /// Marks the connection idle (waiting for its next request) and returns how long it may
  /// wait; nullopt when it was cancelled and must end now.
  std::optional<std::chrono::milliseconds> enter_idle(connection_slot& slot);
  /// Marks the connection busy again; false when it was cancelled and must end now.
  bool leave_idle(connection_slot& slot);
  void connection_ended(connection_slot& slot);
  /// true when every connection has ended within `limit`.
  baton::task<bool> drained_within(std::chrono::milliseconds limit);
  enum class which { idle_before_shutdown, all };
  /// Cancels connections: those idle since before the shutdown began, or all of them.
  void cancel_connections(which victims);

  server_options opts_;
  notes_db& db_;
  std::optional<tcp::acceptor> acceptor_;
  tcp::endpoint endpoint_;

  baton::event stop_requested_;
  baton::event drained_;  // set once stopping and no connection is left
  // Set by stop(), before stopping_: a response built once it is set says Connection: close,
  // and a request whose reading begins once it is set gets 503.
  std::atomic<bool> stopping_flag_{false};

  std::mutex mutex_;  // guards the fields below and every connection_slot
  bool stopping_ = false;
  std::uint64_t next_connection_ = 0;
  std::unordered_map<std::uint64_t, std::shared_ptr<connection_slot>> connections_;
  std::size_t open_ = 0;  // connections_ minus those closed to make room, still ending
  std::size_t connection_cap_ = 0;

  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::size_t> response_bytes_{0};  // held by response_leases
  std::atomic<std::uint64_t> served_{0};
};

/// Waits for SIGINT or SIGTERM on `signals` (an Asio operation awaited with baton::use_task),
/// then calls srv.stop(). Cancel it to stop waiting.
[[nodiscard]] baton::task<void> stop_on_signal(boost::asio::signal_set& signals, server& srv);

}  // namespace http_service
