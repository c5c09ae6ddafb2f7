// SPDX-License-Identifier: BSL-1.0
// The endpoints: what each request does once its context is in place.
#pragma once

// Every handler runs inside its request's task, with current_request_id, current_user,
// current_deadline and the trace context set (see context.hpp), and under the request's
// deadline (server::serve_request wraps route() in baton::wait_for). None of them takes the
// request id or the user as a parameter.
//
//   GET  /            the endpoint list
//   GET  /hello       greets the user from the context
//   GET  /whoami      request id, user, span, baggage, deadline; and the same as seen by a
//                     spawned sub-task and by a to_thread job (a task_group runs both at once)
//   POST /notes       stores the body as a note of the user (SQLite, through to_thread);
//                     `?delay_ms=N` waits N ms first (stands for slow upstream work)
//   GET  /notes       the user's notes, newest first (SQLite, through to_thread), a page at a
//                     time: `?limit=N` (1 to 100, default 20) notes, at most page_limit bytes;
//                     `next` names the next page (`/notes?before=ID&limit=N`) when there is one
//   GET  /slow?ms=N   sleeps N ms: past the deadline it becomes a 504
//   GET  /chain       calls this server's /whoami over HTTP with the trace context injected
//                     (traceparent, tracestate, baggage + hop=chain), the same X-Request-Id and
//                     X-User, and the time left as X-Deadline-Ms; returns what the callee saw
//   GET  /healthz     "ok"

#include "messages.hpp"
#include "server.hpp"

#include <baton/task.hpp>
#include <baton/trace_context.hpp>

#include <functional>
#include <optional>
#include <string_view>

namespace http_service {

struct incoming {
  const request& req;
  std::string_view path;      // percent-decoded
  boost::urls::url_view url;  // the target: query_param(url, name) reads its query
  std::optional<baton::trace_parent> received;  // the caller's traceparent, if valid
  response_lease& lease;  // a handler that holds a large response reserves its memory here
};

[[nodiscard]] baton::task<response> route(server& srv, const incoming& in);

/// Endpoints another part of the program adds (samples/grpc/backend_client.cpp adds
/// /backend/notes): route() offers every request to it first; nullopt means "not mine".
/// Set before serving.
extern std::function<std::optional<baton::task<response>>(const incoming&)> extra_route;

}  // namespace http_service
