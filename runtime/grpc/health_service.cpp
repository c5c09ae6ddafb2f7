// SPDX-License-Identifier: BSL-1.0
// health_service: a table of statuses behind a mutex; Check reads it, each Watch waits on an
// event of its own that set() and the drain raise.
#include <baton/grpc/health_service.hpp>

#include <baton/event.hpp>
#include <baton/grpc/server.hpp>
#include <baton/grpc/status_error.hpp>

#include "baton_grpc_health.pb.h"

#include <map>
#include <mutex>
#include <utility>

namespace baton::grpc {

namespace {

using wire_status = health_wire::check_reply::serving_status;

health_wire::check_reply reply_of(wire_status s) {
  health_wire::check_reply r;
  r.set_status(s);
  return r;
}

}  // namespace

namespace detail {

struct health_table {
  mutable std::mutex mutex;
  std::map<std::string, bool, std::less<>> serving;  // set() only: clients never add to it
  // The open Watches, by service name: each waits on its event for the next change.
  std::multimap<std::string, event*, std::less<>> watchers;
  bool draining = false;

  /// What a Watch of `service` sends now. Under the mutex.
  wire_status wire_status_of(const std::string& service) const {
    auto it = serving.find(service);
    if (it == serving.end()) return health_wire::check_reply::SERVICE_UNKNOWN;
    return it->second ? health_wire::check_reply::SERVING : health_wire::check_reply::NOT_SERVING;
  }

  // Both wake the watchers under the mutex: a Watch that ends takes its event out of the
  // table under it before the event is destroyed, and event::set() only schedules the waiter.
  void change(const std::string& service, bool is_serving) {
    std::lock_guard lock(mutex);
    if (draining) return;
    serving[service] = is_serving;
    auto [first, last] = watchers.equal_range(service);
    for (auto it = first; it != last; ++it) it->second->set();
  }

  void drain() {
    std::lock_guard lock(mutex);
    draining = true;
    for (auto& [name, is_serving] : serving) is_serving = false;
    for (auto& [name, e] : watchers) e->set();
  }
};

}  // namespace detail

namespace {

/// A Watch's entry in the table, for as long as its handler runs.
class watch_entry {
 public:
  watch_entry(detail::health_table& t, const std::string& service, event& e) : table_(t) {
    std::lock_guard lock(table_.mutex);
    at_ = table_.watchers.emplace(service, &e);
  }
  watch_entry(const watch_entry&) = delete;
  watch_entry& operator=(const watch_entry&) = delete;
  ~watch_entry() {
    std::lock_guard lock(table_.mutex);
    table_.watchers.erase(at_);
  }

 private:
  detail::health_table& table_;
  std::multimap<std::string, event*, std::less<>>::iterator at_;
};

}  // namespace

health_service::health_service(server& srv) : table_(std::make_shared<detail::health_table>()) {
  table_->serving.emplace("", true);
  // Registered without the message types: a program that compiles gRPC's own health.proto
  // has the same methods with its messages, which are these on the wire under other names.
  auto check = server::unary_body<health_wire::check_request, health_wire::check_reply>(
      [t = table_](health_wire::check_request req) -> task<health_wire::check_reply> {
        wire_status s;
        {
          std::lock_guard lock(t->mutex);
          s = t->wire_status_of(req.service());
        }
        if (s == health_wire::check_reply::SERVICE_UNKNOWN) {
          throw status_error(::grpc::StatusCode::NOT_FOUND,
                             "baton: health: no status for service '" + req.service() + "'");
        }
        co_return reply_of(s);
      });
  auto watch = server::server_streaming_body<health_wire::check_request, health_wire::check_reply>(
      [t = table_](
          health_wire::check_request req,
          server_stream<health_wire::check_request, health_wire::check_reply>& out) -> task<> {
        event changed;
        watch_entry entry(*t, req.service(), changed);
        std::optional<wire_status> sent;
        for (;;) {
          changed.clear();  // before the read: a change after it sets the event again
          wire_status now;
          bool draining;
          {
            std::lock_guard lock(t->mutex);
            now = t->wire_status_of(req.service());
            draining = t->draining;
          }
          if (now != sent) {
            co_await out.write(reply_of(now));
            sent = now;
          }
          if (draining) {
            throw status_error(::grpc::StatusCode::UNAVAILABLE,
                               "baton: health: the server is shutting down");
          }
          co_await changed.wait();
        }
      });
  srv.add("/grpc.health.v1.Health/Check", detail::call_kind::unary, std::move(check), {}, {});
  // A Watch stays open for as long as its client watches: call_time_limit bounds only the
  // arrival of its request (gRPC's client-side health checking would see it end every limit).
  srv.add("/grpc.health.v1.Health/Watch", detail::call_kind::server_streaming, std::move(watch), {},
          {.time_limited = false});
  srv.at_shutdown([t = table_] { t->drain(); });
}

health_service::~health_service() = default;

void health_service::set(const std::string& service, bool serving) {
  table_->change(service, serving);
}

std::optional<serving_status> health_service::status(const std::string& service) const {
  std::lock_guard lock(table_->mutex);
  auto it = table_->serving.find(service);
  if (it == table_->serving.end()) return std::nullopt;
  return it->second ? serving_status::serving : serving_status::not_serving;
}

task<serving_status> check_health(channel& ch, std::string service) {
  return check_health(ch, std::move(service), call_options{});
}

task<serving_status> check_health(channel& ch, std::string service, call_options opts) {
  health_wire::check_request req;
  req.set_service(std::move(service));
  const health_wire::check_reply reply = co_await ch.call<health_wire::check_reply>(
      "/grpc.health.v1.Health/Check", req, std::move(opts));
  co_return reply.status() == health_wire::check_reply::SERVING ? serving_status::serving
                                                                : serving_status::not_serving;
}

}  // namespace baton::grpc
