// SPDX-License-Identifier: BSL-1.0
// The two-process self-test: the HTTP service and the notes backend, one trace across both.
#pragma once

// run_two_process_test(n, threads, backend_exe):
//   1. starts backend_exe (notes_backend) as a child process with its own SQLite file and log
//      file in a temporary folder, and this process's HTTP server (log file beside it) with
//      /backend/notes routed to the child over gRPC;
//   2. fires n concurrent scenarios, each with its own X-Request-Id, X-User and traceparent:
//      POST /backend/notes must come back 201 with the request id and trace id the backend
//      saw equal to the scenario's; GET /backend/notes must list the note;
//   3. a deadline at the HTTP edge (X-Deadline-Ms: 300) on a note whose backend work takes
//      3 s: 504, and the backend logs that the call was cancelled before storing it;
//   4. kills the backend (SIGKILL) while a note is in its hands: that request gets 502
//      `backend unavailable: ...`;
//   5. afterwards: every acknowledged note is in the backend's database file, and in both
//      processes' logs every line of a scenario's request shows the scenario's trace id (and
//      each process has such lines).
// Prints `<ok> ok, <mismatched> mismatched` (the n scenarios) on stdout, details on stderr;
// returns 0 when every scenario and every check passed.

#include <string>

namespace http_service {

int run_two_process_test(int requests, unsigned threads, const std::string& backend_exe);

}  // namespace http_service
