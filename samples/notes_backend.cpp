// SPDX-License-Identifier: BSL-1.0
// The flagship's second process: a gRPC notes service that owns the SQLite database. The HTTP
// service (http_service --backend ADDR) calls it for /backend/notes; each call runs in a context
// filled from the call (trace, baggage, deadline), so its log lines carry the HTTP request's
// trace id and request id (docs/http-service.md, "Two services, one trace").
// Run: ./build/samples/notes_backend [--listen 127.0.0.1:50051] [--db FILE] [--log-file F]
//   prints "notes_backend: listening on 127.0.0.1:PORT" once it serves; SIGINT/SIGTERM stop it
//   (calls in flight get two seconds).
#include "grpc/notes.pb.h"
#include "http/context.hpp"
#include "http/notes_db.hpp"

#include <baton/errors.hpp>
#include <baton/executor.hpp>
#include <baton/grpc/health_service.hpp>
#include <baton/grpc/server.hpp>
#include <baton/run.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <baton/to_thread.hpp>
#include <baton/trace_context.hpp>
#include <baton/use_task.hpp>

#include <absl/synchronization/mutex.h>
#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

namespace {

namespace hs = http_service;
using namespace std::chrono_literals;

struct options {
  std::string listen = "127.0.0.1:50051";
  std::string db;  // empty: a file in a fresh temporary folder
  hs::log_options log;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "notes_backend: %s\n"
               "usage: notes_backend [--listen HOST:PORT] [--db FILE] [--log-file F]\n"
               "                     [--log-level trace|debug|info|warn|error|off]\n",
               why);
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) usage("missing value");
    const std::string v = argv[++i];
    if (a == "--listen") {
      o.listen = v;
    } else if (a == "--db") {
      o.db = v;
    } else if (a == "--log-file") {
      o.log.file = v;
    } else if (a == "--log-level") {
      o.log.level = spdlog::level::from_str(v);
    } else {
      usage(("unknown option " + std::string(a)).c_str());
    }
  }
  return o;
}

/// The caller's user (from the request message), for the log lines of this call; its request
/// id is set for every method by the server's on_call hook (add_methods()).
void adopt_user(const std::string& user) {
  (void)hs::current_user.set(user.empty() ? std::string("anonymous") : user);
}

std::string trace_id() {
  const auto t = baton::current_trace();
  return t ? t->trace_id_hex() : std::string();
}

void add_methods(baton::grpc::server& srv, hs::notes_db& db) {
  // Every call's log lines carry the request id the HTTP edge put in the baggage.
  srv.on_call([](const std::string&, const ::grpc::ServerContext&) -> baton::task<> {
    (void)hs::current_request_id.set(baton::current_baggage().get("request_id").value_or("-"));
    co_return;
  });
  // One access-log line per call, in the call's context: its request id and trace come along.
  srv.on_call_end([](const std::string& method, const ::grpc::Status& status,
                     std::chrono::steady_clock::duration ran) {
    spdlog::info("rpc {} {} in {} us", method, baton::grpc::code_name(status.error_code()),
                 std::chrono::duration_cast<std::chrono::microseconds>(ran).count());
  });
  srv.add_unary<notes::AddRequest, notes::AddReply>(
      "/notes.Notes/Add", [&db](notes::AddRequest req) -> baton::task<notes::AddReply> {
        adopt_user(req.user());
        spdlog::info("add: a note of {} bytes", req.text().size());
        if (req.work_ms() > 0) {
          try {
            co_await baton::sleep(std::chrono::milliseconds(req.work_ms()));
          } catch (const baton::cancelled_error&) {
            // The HTTP edge's deadline passed, or the caller went away: nothing is stored.
            spdlog::warn("add: cancelled before storing");
            throw;
          }
        }
        const std::string request_id = hs::current_request_id.get();
        const auto id = co_await baton::to_thread(
            [&db, &req, &request_id] { return db.add(req.user(), req.text(), request_id); });
        spdlog::info("add: stored note {}", id);
        notes::AddReply reply;
        reply.set_id(id);
        reply.set_request_id(request_id);
        reply.set_trace_id(trace_id());
        co_return reply;
      });
  srv.add_unary<notes::ListRequest, notes::ListReply>(
      "/notes.Notes/List", [&db](notes::ListRequest req) -> baton::task<notes::ListReply> {
        adopt_user(req.user());
        const auto limit = static_cast<std::size_t>(std::clamp(req.limit(), 1, 500));
        const auto rows =
            co_await baton::to_thread([&db, &req, limit] { return db.list(req.user(), limit); });
        spdlog::info("list: {} notes", rows.size());
        notes::ListReply reply;
        for (const auto& r : rows) {
          auto* n = reply.add_notes();
          n->set_id(r.id);
          n->set_text(r.text);
          n->set_request_id(r.request_id);
        }
        co_return reply;
      });
}

baton::task<void> stop_on_signal(boost::asio::signal_set& signals, baton::grpc::server& srv) {
  try {
    (void)co_await signals.async_wait(baton::use_task);
    spdlog::info("signal: shutting down");
    srv.shutdown(2s);
  } catch (const baton::cancelled_error&) {
  }
}

baton::task<void> serve(const options& o, hs::notes_db& db) {
  // A gRPC-only process: the loop's thread polls the server's queue itself (no hop through a
  // routing thread per call). Its one Asio wait, the signal_set, is then seen within 5 ms.
  // Bounded like the HTTP edge in front of it: as many calls at once as the edge keeps in
  // flight, none longer than the edge's longest deadline, messages no larger than a few of its
  // 64 KiB bodies, and gRPC's buffers for all connections within 1024 such calls twice over
  // (a message's prefix may declare up to 4 GiB: max_memory_bytes is what stops that one).
  // Compressed messages stay refused, the default: gRPC inflates one whole before its size
  // is checked, and the edge sends none.
  // A caller that vanishes without closing is found by a ping within 40 s.
  baton::grpc::server srv({.addresses = {o.listen},
                           .max_message_bytes = 256 * 1024,
                           .poll_on_loop = true,
                           .max_calls = 1024,
                           .call_time_limit = 10s,
                           .max_memory_bytes = 128 * 1024 * 1024,
                           .keepalive_time = 30s,
                           .keepalive_timeout = 10s});
  add_methods(srv, db);
  // grpc.health.v1 for probes and load balancers: the database is open by now, and a SIGTERM's
  // shutdown turns it NOT_SERVING for the two seconds of grace.
  baton::grpc::health_service health(srv);
  health.set("notes.Notes", true);
  srv.start();
  const std::string host = o.listen.substr(0, o.listen.rfind(':'));
  spdlog::info("listening on {}:{}", host, srv.port());
  std::printf("notes_backend: listening on %s:%d\n", host.c_str(), srv.port());
  std::fflush(stdout);
  boost::asio::signal_set signals(baton::current_executor(), SIGINT, SIGTERM);
  auto watcher = baton::spawn(stop_on_signal(signals, srv));
  co_await srv.serve();
  watcher.cancel();
  co_await watcher;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any gRPC object: no deadlock detector, as in a release build of abseil. Debian's is a
  // debug-mode build whose every mutex (gRPC's) feeds one (docs/grpc.md, "Abseil's deadlock
  // detector").
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const options o = parse(argc, argv);
  hs::setup_logging(o.log);
  // Every line reaches the file at once: the two-process self-test reads it while we run.
  spdlog::default_logger()->flush_on(spdlog::level::info);
  int status = 0;
  try {
    const hs::db_location where(o.db, "notes-backend");
    constexpr std::size_t blocking_threads = 8;
    hs::notes_db db(where.file(), blocking_threads);
    spdlog::info("notes in {}", db.path());
    baton::run_options ro;
    ro.blocking_threads = blocking_threads;
    baton::run(serve(o, db), ro);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    std::fprintf(stderr, "notes_backend: %s\n", e.what());
    status = 1;
  }
  return status;
}
