// SPDX-License-Identifier: BSL-1.0
// The flagship sample: an HTTP/1.1 service on Asio + Beast where every request carries its
// request id, user, deadline and W3C trace context in baton context vars (docs/http-service.md).
// Run: ./build/samples/http_service [--port 8080] [--threads N] [--db FILE]
//      ./build/samples/http_service --self-test 200      (prints "200 ok, 0 mismatched")
// Its parts are in samples/http/.
#include "http/context.hpp"
#include "http/notes_db.hpp"
#include "http/self_test.hpp"
#if HTTP_SERVICE_WITH_BACKEND
#include "grpc/backend_client.hpp"
#include "grpc/two_process_test.hpp"
#endif
#include "http/server.hpp"

#include <baton/executor.hpp>
#include <baton/run.hpp>
#include <baton/spawn.hpp>

#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>

namespace {

namespace hs = http_service;

struct options {
  hs::server_options server;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::string db;  // empty: a file in a fresh temporary folder, removed at exit
  hs::log_options log;
  int self_test = 0;
  std::string backend;       // --backend: the notes backend's address (samples/notes_backend)
  bool two_process = false;  // --two-process: the self-test with the backend as a 2nd process
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(
      stderr,
      "http_service: %s\n"
      "usage: http_service [--port P] [--address A] [--threads N] [--db FILE]\n"
      "                    [--log-level trace|debug|info|warn|error|off] [--log-file F]\n"
      "                    [--log-flush-ms N]   (0: every line at once; default 1000)\n"
      "                    [--read-timeout-ms N] [--idle-timeout-ms N] [--shutdown-grace-ms N]\n"
      "                    [--shutdown-last-call-ms N]\n"
      "                    [--backend HOST:PORT]   (/backend/notes on samples/notes_backend)\n"
      "       http_service --self-test N [--threads N] [--two-process]\n",
      why);
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value");
      return argv[++i];
    };
    auto number = [&](long lo, long hi) {
      const std::string v = value();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < lo || n > hi) usage(("bad number: " + v).c_str());
      return n;
    };
    if (a == "--port") {
      o.server.port = static_cast<unsigned short>(number(0, 65535));
    } else if (a == "--address") {
      boost::system::error_code ec;
      o.server.address = boost::asio::ip::make_address(value(), ec);
      if (ec) usage("bad address");
    } else if (a == "--threads") {
      o.threads = static_cast<unsigned>(number(1, 256));
    } else if (a == "--db") {
      o.db = value();
    } else if (a == "--log-level") {
      o.log.level = spdlog::level::from_str(value());
    } else if (a == "--log-file") {
      o.log.file = value();
    } else if (a == "--log-flush-ms") {
      o.log.flush_interval = std::chrono::milliseconds(number(0, 3'600'000));
    } else if (a == "--read-timeout-ms") {
      o.server.read_timeout = std::chrono::milliseconds(number(1, 3'600'000));
    } else if (a == "--idle-timeout-ms") {
      o.server.idle_timeout = std::chrono::milliseconds(number(1, 3'600'000));
    } else if (a == "--shutdown-grace-ms") {
      o.server.shutdown_grace = std::chrono::milliseconds(number(0, 3'600'000));
    } else if (a == "--shutdown-last-call-ms") {
      o.server.shutdown_last_call = std::chrono::milliseconds(number(0, 3'600'000));
    } else if (a == "--max-connections") {
      o.server.max_connections = static_cast<std::size_t>(number(1, 10'000'000));
    } else if (a == "--max-in-flight") {
      o.server.max_in_flight = static_cast<std::size_t>(number(1, 10'000'000));
    } else if (a == "--page-limit") {
      o.server.page_limit = static_cast<std::size_t>(number(1, 1L << 30));
    } else if (a == "--response-memory") {
      o.server.response_memory = static_cast<std::size_t>(number(1, 1L << 40));
    } else if (a == "--self-test") {
      o.self_test = static_cast<int>(number(1, 100000));
    } else if (a == "--backend") {
      o.backend = value();
    } else if (a == "--two-process") {
      o.two_process = true;
    } else {
      usage(("unknown option " + std::string(a)).c_str());
    }
  }
  return o;
}

/// Many connections need many descriptors: take the hard limit.
void raise_fd_limit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

baton::task<void> serve(hs::server& srv) {
  srv.listen();
  boost::asio::signal_set signals(baton::current_executor(), SIGINT, SIGTERM);
  auto watcher = baton::spawn(hs::stop_on_signal(signals, srv));
  const auto ep = srv.local_endpoint();
  spdlog::info("listening on http://{}:{}; at most {} connections, {} requests in flight",
               ep.address().to_string(), ep.port(), srv.connection_cap(),
               srv.options().max_in_flight);
  std::printf("http_service: listening on http://%s:%u\n", ep.address().to_string().c_str(),
              ep.port());
  std::fflush(stdout);
  co_await srv.run();  // until SIGINT/SIGTERM, then the graceful shutdown
  co_await watcher;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  raise_fd_limit();
#if HTTP_SERVICE_WITH_BACKEND
  if (o.self_test > 0 && o.two_process) {
    // notes_backend is built beside this executable.
    const auto backend_exe =
        std::filesystem::read_symlink("/proc/self/exe").parent_path() / "notes_backend";
    return hs::run_two_process_test(o.self_test, o.threads, backend_exe.string());
  }
  if (!o.backend.empty()) hs::use_backend(o.backend);
#else
  if (o.two_process || !o.backend.empty()) usage("built without gRPC (baton_grpc)");
#endif
  if (o.self_test > 0) return hs::run_self_test(o.self_test, o.threads);

  hs::setup_logging(o.log);
  int status = 0;
  try {
    const hs::db_location where(o.db, "http-service");
    constexpr std::size_t blocking_threads = 8;
    hs::notes_db db(where.file(), blocking_threads);  // outlives the loop and its to_thread jobs
    spdlog::info("notes in {}", db.path());
    hs::server srv(o.server, db);
    baton::run_options ro;
    ro.threads = o.threads;
    ro.blocking_threads = blocking_threads;
    baton::run(serve(srv), ro);
    std::printf("http_service: stopped after serving %llu requests\n",
                static_cast<unsigned long long>(srv.served()));
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    std::fprintf(stderr, "http_service: %s\n", e.what());
    status = 1;
  }
  return status;
}
