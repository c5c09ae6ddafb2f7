// SPDX-License-Identifier: BSL-1.0
// The HTTP service's side of the notes backend (samples/notes_backend.cpp): /backend/ endpoints
// that call it over gRPC with the request's context.
#pragma once

// Contract:
//   use_backend(address)   makes route() serve /backend/notes through a notes backend at
//                          `address` ("127.0.0.1:50051"); call before serving. The channel
//                          lives until the process ends.
//   POST /backend/notes[?work_ms=N]   stores the body as a note of the user in the backend;
//                          201 {"id", "request_id", "trace_id"} with what the backend saw.
//   GET  /backend/notes    the user's notes from the backend.
//   GET  /backend/ready    200 "ready" when the backend's health check says notes.Notes is
//                          serving, else 503 saying why (not serving, or unreachable).
// Every call carries the request's trace (its span as the backend's parent), its baggage plus
// request_id=<the request id>, and its deadline (the HTTP edge's budget): when the budget runs
// out the HTTP request ends with 504 and the backend's handler is cancelled. A backend that
// cannot be reached or dies mid-call gives 502 with `backend unavailable: <why>`; a note is
// acknowledged (201) only after the backend committed it.

#include "../http/handlers.hpp"
#include "../http/messages.hpp"

#include <baton/task.hpp>

#include <string>

namespace http_service {

void use_backend(const std::string& address);

}  // namespace http_service
