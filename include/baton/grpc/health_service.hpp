// SPDX-License-Identifier: BSL-1.0
// health_service: gRPC's standard health checks (grpc.health.v1.Health) served by a baton server,
// with the drain at shutdown that load balancers watch for.
#pragma once

// Contract:
//   health_service(srv)  registers /grpc.health.v1.Health/Check and /Watch on srv, before
//                  srv.start() (the server's runtime_error otherwise). The whole server (service
//                  name "") starts SERVING; no other service is known until set().
//   set(service, serving)   records a service's status and wakes every Watch of it. From any
//                  thread. Ignored once the drain has begun.
//   status(service)         what Check answers: serving_status::serving or not_serving,
//                  nullopt for a service never set.
//   The drain: when srv's shutdown starts (shutdown(), the serving task cancelled, the server
//                  destroyed), every known service becomes NOT_SERVING at once, before the
//                  grace period: each Watch sends NOT_SERVING and then ends with UNAVAILABLE, so
//                  a watcher moves its traffic away while the calls in flight finish (given
//                  a grace period: shutdown() with none cancels every call at once, Watches
//                  too, which may then end without the NOT_SERVING).
//   Check(service): the status; NOT_FOUND for a service never set (the protocol's rule).
//   Watch(service): the status now (SERVICE_UNKNOWN for a service never set), then each change
//                  (a set() that repeats the status sends nothing), until the client cancels or
//                  the drain. Each handler runs on the serving loop like any other call.
//   Bounds: a client never adds to the table (only set() does); one Watch holds its service
//                  name (at most the server's max_message_bytes) and one event. Watches count
//                  against max_calls like any call; call_time_limit bounds a Watch only until
//                  its request is in (a Watch is meant to stay open; the server's keepalive
//                  finds a watcher whose host vanished).
//   Lifetime: the table is shared with the server's handlers, so the health_service may be
//                  destroyed before the server; set() then has no object to call.
//   Thread-safety: set() and status() from any thread, at once.
//
//   check_health(ch, service[, opts])  the client's side: asks the server behind `ch` (any
//                  gRPC server with the health service, baton's or not) about `service` ("":
//                  the whole server) with Check; serving only for SERVING, not_serving for any
//                  other answer. A call like any (channel.hpp): the caller's context and
//                  deadline go with it; status_error when it fails (NOT_FOUND: a service the
//                  server never set; UNIMPLEMENTED: no health service there; UNAVAILABLE: no
//                  server).
//
// Example:
//   baton::grpc::server srv({.addresses = {"0.0.0.0:50051"}});
//   baton::grpc::health_service health(srv);
//   health.set("notes.Notes", false);          // not ready until the database is open
//   ...
//   health.set("notes.Notes", true);
//   co_await srv.serve();                      // shutdown() turns both NOT_SERVING first

#include <baton/grpc/channel.hpp>
#include <baton/task.hpp>

#include <memory>
#include <optional>
#include <string>

namespace baton::grpc {

class server;
namespace detail {
struct health_table;
}

enum class serving_status { serving, not_serving };

class health_service {
 public:
  explicit health_service(server& srv);
  health_service(const health_service&) = delete;
  health_service& operator=(const health_service&) = delete;
  ~health_service();

  void set(const std::string& service, bool serving);
  std::optional<serving_status> status(const std::string& service) const;

 private:
  std::shared_ptr<detail::health_table> table_;  // shared with the handlers and the drain
};

// Two overloads, no default argument: see channel.hpp (g++ 12 and co_await).
[[nodiscard]] task<serving_status> check_health(channel& ch, std::string service);
[[nodiscard]] task<serving_status> check_health(channel& ch, std::string service,
                                                call_options opts);

}  // namespace baton::grpc
