// SPDX-License-Identifier: BSL-1.0
// /backend/notes: the HTTP request's context crosses to the notes backend over gRPC;
// /backend/ready: the backend's health check.
#include "backend_client.hpp"

#include "../http/context.hpp"
#include "notes.pb.h"

#include <baton/grpc/call_context.hpp>
#include <baton/grpc/channel.hpp>
#include <baton/grpc/channel_bounds.hpp>
#include <baton/grpc/health_service.hpp>
#include <baton/spdlog.hpp>
#include <baton/trace_context.hpp>

#include <boost/json.hpp>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace http_service {

namespace {

std::unique_ptr<baton::grpc::channel> backend;

/// The request's baggage plus request_id, and its deadline as baton_grpc's: what every call to
/// the backend carries. The request's task has a context of its own, so nothing leaks.
void prepare_context() {
  const std::string id = current_request_id.get("");
  baton::baggage bag = baton::current_baggage();
  if (!bag.set("request_id", id)) {  // the client's baggage is full: send the id alone
    bag = {};
    (void)bag.set("request_id", id);
  }
  (void)baton::baggage_var().set(std::move(bag));
  if (const auto d = current_deadline.try_get()) {
    (void)baton::grpc::deadline_var().set(
        std::chrono::steady_clock::time_point(std::chrono::nanoseconds(*d)));
  }
}

response failed(const baton::grpc::status_error& e) {
  spdlog::warn("backend call failed: {}", baton::log_value(e.what()));
  if (e.code() == ::grpc::StatusCode::DEADLINE_EXCEEDED) {
    return error_response(http::status::gateway_timeout, "backend: deadline exceeded");
  }
  return error_response(http::status::bad_gateway, "backend unavailable: " + e.message());
}

baton::task<response> add(const incoming& in) {
  notes::AddRequest req;
  req.set_user(current_user.get());
  req.set_text(in.req.body());
  if (const auto ms = query_param(in.url, "work_ms")) {
    if (const auto n = to_number(*ms); n && *n <= 60000) req.set_work_ms(static_cast<int>(*n));
  }
  prepare_context();
  notes::AddReply reply;
  try {
    reply = co_await backend->call<notes::AddReply>("/notes.Notes/Add", req);
  } catch (const baton::grpc::status_error& e) {
    co_return failed(e);
  }
  spdlog::info("backend stored note {}", reply.id());
  json::object o;
  o["id"] = reply.id();
  o["request_id"] = reply.request_id();
  o["trace_id"] = reply.trace_id();
  co_return json_response(http::status::created, o);
}

baton::task<response> list() {
  notes::ListRequest req;
  req.set_user(current_user.get());
  req.set_limit(50);
  prepare_context();
  notes::ListReply reply;
  try {
    reply = co_await backend->call<notes::ListReply>("/notes.Notes/List", req);
  } catch (const baton::grpc::status_error& e) {
    co_return failed(e);
  }
  json::array notes;
  for (const auto& n : reply.notes()) {
    json::object o;
    o["id"] = n.id();
    o["text"] = n.text();
    o["request_id"] = n.request_id();
    notes.push_back(std::move(o));
  }
  co_return json_response(http::status::ok, notes);
}

/// Whether the backend says its notes service is serving (its gRPC health check, within a
/// second): what a readiness probe of this service asks before sending it traffic.
baton::task<response> ready() {
  baton::grpc::call_options opts;
  opts.timeout = std::chrono::seconds(1);
  try {
    if (co_await baton::grpc::check_health(*backend, "notes.Notes", opts) ==
        baton::grpc::serving_status::serving) {
      co_return text_response(http::status::ok, "ready\n");
    }
    co_return error_response(http::status::service_unavailable, "backend not serving");
  } catch (const baton::grpc::status_error& e) {
    co_return error_response(http::status::service_unavailable,
                             "backend unavailable: " + e.message());
  }
}

}  // namespace

void use_backend(const std::string& address) {
  // One line per backend call, in the HTTP request's context: its request id and trace come
  // along, as on the backend's own access line for the same call.
  baton::grpc::channel_options options;
  options.after_call = [](const std::string& method, const ::grpc::Status& status,
                          std::chrono::steady_clock::duration ran) {
    spdlog::info("backend rpc {} {} in {} us", method, baton::grpc::code_name(status.error_code()),
                 std::chrono::duration_cast<std::chrono::microseconds>(ran).count());
  };
  // Bounded against a backend gone wrong: replies and metadata at gRPC's default bounds,
  // compressed replies refused before gRPC inflates them, gRPC's buffers at most 64 MiB.
  backend = std::make_unique<baton::grpc::channel>(
      ::grpc::CreateCustomChannel(
          address, ::grpc::InsecureChannelCredentials(),
          baton::grpc::bounded_channel_arguments({.max_memory_bytes = std::size_t{64} << 20})),
      std::move(options));
  extra_route = [](const incoming& in) -> std::optional<baton::task<response>> {
    if (in.path == "/backend/ready" && in.req.method() == http::verb::get) return ready();
    if (in.path != "/backend/notes") return std::nullopt;
    if (in.req.method() == http::verb::post) return add(in);
    if (in.req.method() == http::verb::get) return list();
    return std::nullopt;
  };
}

}  // namespace http_service
