// SPDX-License-Identifier: BSL-1.0
// The self-test: the service against its own concurrent clients, then a graceful shutdown.
#pragma once

// run_self_test(n, threads):
//   1. starts the server on 127.0.0.1 (port chosen by the OS), a fresh SQLite file and a log
//      file in a temporary folder;
//   2. fires n concurrent scenarios, each a baton task with its own socket, its own
//      X-Request-Id, X-User, traceparent and baggage: GET /whoami, POST + GET /notes on one
//      keep-alive connection, GET /chain, GET /hello. Each checks that every response carries
//      its own request id, user and trace id (and, for /whoami and /chain, that the sub-task,
//      the to_thread job and the callee saw them too);
//   3. checks malformed and edge cases: a bad request line (400), an oversized header (431), an
//      oversized body (413), a deadline (504), no headers at all (a generated id, anonymous),
//      and that the server still serves after each;
//   4. raises SIGTERM while notes are being posted and a keep-alive connection sits idle:
//      every note in flight must be acknowledged with `Connection: close`, the idle connection
//      closed, new connections refused;
//   5. after the loop ended: every acknowledged note is in the database file, and every log
//      line of a request shows that request's id and user.
// Prints `<ok> ok, <mismatched> mismatched` (the n scenarios) on stdout, details on stderr;
// returns 0 when every scenario and every check passed.

namespace http_service {

int run_self_test(int requests, unsigned threads);

}  // namespace http_service
