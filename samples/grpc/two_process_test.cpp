// SPDX-License-Identifier: BSL-1.0
// The two-process self-test (see two_process_test.hpp).
#include "two_process_test.hpp"

#include "../http/client.hpp"
#include "../http/context.hpp"
#include "../http/notes_db.hpp"
#include "../http/server.hpp"
#include "backend_client.hpp"

#include <baton/run.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <baton/task_handle.hpp>
#include <baton/trace_context.hpp>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace http_service {

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

/// The backend child process: started with its stdout on a pipe, to read its port.
struct backend_process {
  pid_t pid = -1;
  std::string address;  // "127.0.0.1:PORT"

  void kill_now() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
  void stop() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
};

backend_process start_backend(const std::string& exe, const fs::path& dir) {
  int out[2];
  if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  const std::string db = (dir / "backend.db").string();
  const std::string log = (dir / "backend.log").string();
  std::vector<std::string> args = {exe, "--listen", "127.0.0.1:0", "--db", db, "--log-file", log};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  backend_process p;
  const int rc = ::posix_spawn(&p.pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    throw std::runtime_error("cannot start " + exe);
  }
  std::string line;
  char c = 0;
  while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
  ::close(out[0]);
  const std::string prefix = "notes_backend: listening on ";
  if (line.rfind(prefix, 0) != 0) {
    p.stop();
    throw std::runtime_error("the backend did not start: " + line);
  }
  p.address = line.substr(prefix.size());
  return p;
}

struct scenario_id {
  std::string request_id;
  std::string user;
  baton::trace_parent trace;
};

request make(http::verb verb, const std::string& target, const scenario_id& s,
             std::string body = {}, std::optional<int> deadline_ms = {}) {
  request req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set("X-Request-Id", s.request_id);
  req.set("X-User", s.user);
  req.set("traceparent", s.trace.to_string());
  if (deadline_ms) req.set("X-Deadline-Ms", std::to_string(*deadline_ms));
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

json::value body_of(const response& res) {
  boost::system::error_code ec;
  auto v = json::parse(res.body(), ec);
  return ec ? json::value() : v;
}

std::string field(const json::value& v, const char* key) {
  if (!v.is_object()) return {};
  const auto* p = v.as_object().if_contains(key);
  if (!p) return {};
  if (p->is_string()) return std::string(p->as_string());
  if (p->is_int64()) return std::to_string(p->as_int64());
  return {};
}

/// One scenario: a note through the backend and back. Returns the acknowledged note id, or
/// nullopt with the reason on stderr.
baton::task<std::optional<std::int64_t>> note_scenario(tcp::endpoint ep, const scenario_id& s) {
  auto posted =
      co_await fetch(ep, make(http::verb::post, "/backend/notes", s, "note of " + s.user));
  const auto v = body_of(posted);
  if (posted.result() != http::status::created || field(v, "request_id") != s.request_id ||
      field(v, "trace_id") != s.trace.trace_id_hex() ||
      std::string(posted["X-Request-Id"]) != s.request_id) {
    std::fprintf(stderr, "two-process: %s: POST gave %u %s\n", s.request_id.c_str(),
                 posted.result_int(), posted.body().c_str());
    co_return std::nullopt;
  }
  const std::int64_t id = std::stoll(field(v, "id"));
  auto listed = co_await fetch(ep, make(http::verb::get, "/backend/notes", s));
  const auto l = body_of(listed);
  bool found = false;
  if (l.is_array()) {
    for (const auto& n : l.as_array()) found = found || field(n, "id") == std::to_string(id);
  }
  if (!found) {
    std::fprintf(stderr, "two-process: %s: note %lld not listed: %s\n", s.request_id.c_str(),
                 static_cast<long long>(id), listed.body().c_str());
    co_return std::nullopt;
  }
  co_return id;
}

/// Reads `key=value` out of a log line's context fields.
std::string log_field(const std::string& line, const std::string& key) {
  const auto at = line.find(" " + key + "=");
  const auto at_start = line.find("[" + key + "=");
  auto pos = at != std::string::npos ? at : at_start;
  if (pos == std::string::npos) return {};
  pos += key.size() + 2;
  const auto end = line.find_first_of(" ]", pos);
  return line.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
}

/// True when the log has a line with this request id containing `text` now.
bool log_has(const fs::path& log, const std::string& request_id, const std::string& text) {
  std::ifstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (log_field(line, "request_id") == request_id && line.find(text) != std::string::npos) {
      return true;
    }
  }
  return false;
}

/// Waits (a bounded poll of the file: another process writes it) until the log has a line
/// with this request id containing `text`.
baton::task<bool> wait_for_log(const fs::path& log, const std::string& request_id,
                               const std::string& text) {
  for (int i = 0; i < 1000; ++i) {
    if (log_has(log, request_id, text)) co_return true;
    co_await baton::sleep(10ms);
  }
  co_return false;
}

/// Every line of each request shows its trace id; false (with the reason) otherwise, or when
/// a request has no line at all.
std::set<std::string> check_log(const fs::path& log, const std::vector<scenario_id>& ids,
                                const char* who) {
  std::map<std::string, std::string> trace_of;
  for (const auto& s : ids) trace_of[s.request_id] = s.trace.trace_id_hex();
  std::set<std::string> seen, bad;
  std::ifstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    const auto id = log_field(line, "request_id");
    const auto it = trace_of.find(id);
    if (it == trace_of.end()) continue;
    seen.insert(id);
    if (log_field(line, "trace") != it->second) {
      std::fprintf(stderr, "two-process: %s log: wrong trace on: %s\n", who, line.c_str());
      bad.insert(id);
    }
  }
  for (const auto& s : ids) {
    if (!seen.count(s.request_id)) {
      std::fprintf(stderr, "two-process: %s log: no line for %s\n", who, s.request_id.c_str());
      bad.insert(s.request_id);
    }
  }
  return bad;
}

struct results {
  std::vector<std::optional<std::int64_t>> acknowledged;
  bool deadline_ok = false;
  bool kill_ok = false;
  bool ready_ok = false;
};

baton::task<results> drive(server& srv, backend_process& backend, const fs::path& dir,
                           const std::vector<scenario_id>& ids) {
  const tcp::endpoint ep = srv.local_endpoint();
  results r;
  std::vector<baton::task_handle<std::optional<std::int64_t>>> running;
  for (const auto& s : ids) running.push_back(baton::spawn(note_scenario(ep, s)));
  for (auto& h : running) r.acknowledged.push_back(co_await h);

  // A deadline at the HTTP edge cancels the backend's work.
  scenario_id late{"deadline-1", "dora", baton::trace_parent::generate(1)};
  auto res = co_await fetch(
      ep, make(http::verb::post, "/backend/notes?work_ms=3000", late, "too slow", 300));
  // Each side's access line for that call: the backend's handler was cancelled; the HTTP
  // service's call did not end OK (DEADLINE_EXCEEDED, or CANCELLED when the edge's own
  // deadline cancelled the request's task first: both fall due at the same instant).
  const bool cancelled_there =
      co_await wait_for_log(dir / "backend.log", late.request_id, "cancelled before storing") &&
      co_await wait_for_log(dir / "backend.log", late.request_id, "rpc /notes.Notes/Add CANCELLED");
  spdlog::default_logger()->flush();
  const bool expired_here =
      co_await wait_for_log(dir / "http.log", late.request_id, "backend rpc /notes.Notes/Add") &&
      !log_has(dir / "http.log", late.request_id, "backend rpc /notes.Notes/Add OK");
  r.deadline_ok = res.result() == http::status::gateway_timeout && cancelled_there && expired_here;
  if (!r.deadline_ok) {
    std::fprintf(stderr, "two-process: deadline: HTTP %u, backend cancelled: %s, logged: %s\n",
                 res.result_int(), cancelled_there ? "yes" : "no", expired_here ? "yes" : "no");
  }

  // The backend's health check says it serves, through the HTTP service's readiness endpoint.
  scenario_id probe{"ready-1", "rita", baton::trace_parent::generate(1)};
  auto up = co_await fetch(ep, make(http::verb::get, "/backend/ready", probe));

  // Killing the backend mid-request gives the client a clear error.
  scenario_id doomed{"kill-1", "kim", baton::trace_parent::generate(1)};
  auto in_flight = baton::spawn(fetch(
      ep, make(http::verb::post, "/backend/notes?work_ms=3000", doomed, "never acked", 10000)));
  const bool arrived = co_await wait_for_log(dir / "backend.log", doomed.request_id, "add:");
  backend.kill_now();
  auto killed = co_await in_flight;
  r.kill_ok = arrived && killed.result() == http::status::bad_gateway &&
              killed.body().find("backend unavailable") != std::string::npos;
  if (!r.kill_ok) {
    std::fprintf(stderr, "two-process: kill: arrived %s, HTTP %u %s\n", arrived ? "yes" : "no",
                 killed.result_int(), killed.body().c_str());
  }
  // And with the backend gone, the service is not ready.
  scenario_id after_kill{"ready-2", "rita", baton::trace_parent::generate(1)};
  auto down = co_await fetch(ep, make(http::verb::get, "/backend/ready", after_kill));
  r.ready_ok = up.result() == http::status::ok &&
               down.result() == http::status::service_unavailable &&
               down.body().find("backend unavailable") != std::string::npos;
  if (!r.ready_ok) {
    std::fprintf(stderr, "two-process: ready: HTTP %u before the kill, %u %s after\n",
                 up.result_int(), down.result_int(), down.body().c_str());
  }
  srv.stop();
  co_return r;
}

}  // namespace

int run_two_process_test(int requests, unsigned threads, const std::string& backend_exe) {
  std::string t = (fs::temp_directory_path() / "baton-two-process-XXXXXX").string();
  if (::mkdtemp(t.data()) == nullptr) {
    std::perror("two-process: mkdtemp");
    return 1;
  }
  const fs::path dir = t;
  int status = 1;
  int ok = 0;
  int mismatched = requests;
  try {
    setup_logging({(dir / "http.log").string(), spdlog::level::info});
    backend_process backend = start_backend(backend_exe, dir);
    use_backend(backend.address);
    std::vector<scenario_id> ids;
    for (int i = 0; i < requests; ++i) {
      ids.push_back({"tp-" + std::to_string(i), "user" + std::to_string(i % 7),
                     baton::trace_parent::generate(1)});
    }
    results r;
    {
      notes_db local((dir / "http.db").string(), 4);  // for /notes, unused here
      server_options so;
      so.port = 0;
      server srv(so, local);
      baton::run_options ro;
      ro.threads = threads;
      ro.blocking_threads = 4;
      r = baton::run(
          [](server& s, backend_process& b, const fs::path& d,
             const std::vector<scenario_id>& v) -> baton::task<results> {
            s.listen();
            auto serving = baton::spawn(s.run());
            results out = co_await drive(s, b, d, v);
            co_await serving;
            co_return out;
          }(srv, backend, dir, ids),
          ro);
    }
    backend.stop();
    spdlog::default_logger()->flush();

    // Acknowledged notes survived the kill: they are in the backend's file.
    notes_db after((dir / "backend.db").string(), 1);
    std::set<std::string> lost;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (!r.acknowledged[i]) continue;
      bool found = false;
      for (const auto& n : after.list(ids[i].user, 10000))
        found = found || n.id == *r.acknowledged[i];
      if (!found) {
        std::fprintf(stderr, "two-process: acknowledged note %lld of %s lost\n",
                     static_cast<long long>(*r.acknowledged[i]), ids[i].request_id.c_str());
        lost.insert(ids[i].request_id);
      }
    }
    const auto bad_http = check_log(dir / "http.log", ids, "http");
    const auto bad_backend = check_log(dir / "backend.log", ids, "backend");
    ok = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const auto& id = ids[i].request_id;
      if (r.acknowledged[i] && !lost.count(id) && !bad_http.count(id) && !bad_backend.count(id)) {
        ++ok;
      }
    }
    mismatched = requests - ok;
    status = mismatched == 0 && r.deadline_ok && r.kill_ok && r.ready_ok ? 0 : 1;
    std::fprintf(stderr, "two-process: deadline check %s, kill check %s, ready check %s\n",
                 r.deadline_ok ? "ok" : "FAILED", r.kill_ok ? "ok" : "FAILED",
                 r.ready_ok ? "ok" : "FAILED");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "two-process: %s\n", e.what());
  }
  std::printf("%d ok, %d mismatched\n", ok, mismatched);
  std::error_code ec;
  if (status == 0)
    fs::remove_all(dir, ec);
  else
    std::fprintf(stderr, "two-process: logs kept in %s\n", dir.c_str());
  return status;
}

}  // namespace http_service
