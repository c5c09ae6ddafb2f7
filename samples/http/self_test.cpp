// SPDX-License-Identifier: BSL-1.0
// The self-test: concurrent clients with their own ids, malformed input, a shutdown on SIGTERM,
// then the database file and the log file checked after the loop ended.
#include "self_test.hpp"

#include "client.hpp"
#include "context.hpp"
#include "messages.hpp"
#include "notes_db.hpp"
#include "server.hpp"

#include <baton/errors.hpp>
#include <baton/executor.hpp>
#include <baton/run.hpp>
#include <baton/sleep.hpp>
#include <baton/spawn.hpp>
#include <baton/trace_context.hpp>
#include <baton/wait_for.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace http_service {

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

enum class verdict { ok, mismatched, failed };

struct outcome {
  verdict v = verdict::ok;
  std::string detail;
};

/// Collects what a scenario got wrong.
class checker {
 public:
  explicit checker(std::string who) : who_(std::move(who)) {}

  void equal(const std::string& what, const std::string& got, const std::string& want) {
    if (got != want) problems_.push_back(what + " is '" + got + "', expected '" + want + "'");
  }
  void expect(bool condition, const std::string& what) {
    if (!condition) problems_.push_back(what);
  }
  outcome result() const {
    if (problems_.empty()) return {};
    std::string d = who_ + ":";
    for (const auto& p : problems_) d += " " + p + ";";
    return {verdict::mismatched, d};
  }

 private:
  std::string who_;
  std::vector<std::string> problems_;
};

/// Every request id the test sends with its user, and every note the service acknowledged.
struct ledger {
  struct note {
    std::int64_t id;
    std::string user, text, request_id;
  };

  std::mutex mutex;  // scenarios run on every loop thread
  std::map<std::string, std::string> user_of;
  std::vector<note> acknowledged;

  void expect_request(const std::string& id, const std::string& user) {
    std::lock_guard lock(mutex);
    user_of[id] = user;
  }
  void acknowledge(note n) {
    std::lock_guard lock(mutex);
    acknowledged.push_back(std::move(n));
  }
};

/// Who a scenario pretends to be.
struct identity {
  int i = 0;
  std::string id, user, baggage;
  baton::trace_parent trace;
};

identity make_identity(int i, const std::string& kind) {
  identity s;
  s.i = i;
  s.id = "st-" + kind + "-" + std::to_string(i);
  s.user = kind + "-user-" + std::to_string(i);
  s.baggage = "selftest=" + std::to_string(i);
  s.trace = baton::trace_parent::generate(baton::trace_parent::sampled_flag);
  return s;
}

request make_request(http::verb verb, std::string_view target, const std::string& id,
                     const identity& s) {
  request r{verb, target, 11};
  r.set(http::field::host, "127.0.0.1");
  r.set("X-Request-Id", id);
  r.set("X-User", s.user);
  r.set("traceparent", s.trace.to_string());
  r.set("tracestate", "baton=selftest");
  r.set("baggage", s.baggage);
  r.keep_alive(true);
  return r;
}

std::string header(const response& res, std::string_view name) {
  const auto it = res.find(name);
  return it == res.end() ? std::string("<none>") : std::string(it->value());
}

json::value parse_or_null(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  return ec ? json::value(nullptr) : v;
}

const json::value& member(const json::value& v, std::string_view key) {
  static const json::value none;
  if (const auto* o = v.if_object()) {
    if (const auto* m = o->if_contains(key)) return *m;
  }
  return none;
}

std::string str(const json::value& v, std::string_view key) {
  const json::value& m = member(v, key);
  if (const auto* s = m.if_string()) return std::string(*s);
  return m.is_null() ? "<missing>" : json::serialize(m);
}

/// Status, X-Request-Id, and a span of the service's own in the caller's trace.
void check_common(checker& k, const response& res, http::status want, const std::string& id,
                  const identity& s) {
  k.expect(res.result() == want, "status " + std::to_string(res.result_int()) + " (wanted " +
                                     std::to_string(static_cast<unsigned>(want)) +
                                     "): " + res.body());
  k.equal("X-Request-Id", header(res, "X-Request-Id"), id);
  const auto span = baton::trace_parent::parse(header(res, "traceparent"));
  k.expect(span.has_value(), "no valid traceparent in the response");
  if (span) {
    k.equal("the response's trace id", span->trace_id_hex(), s.trace.trace_id_hex());
    k.expect(span->parent_id != s.trace.parent_id, "the service did not start its own span");
  }
}

// ---- the concurrent scenarios -------------------------------------------------------------

/// What get_json() got: its checker, to go on with, the JSON body (null if it was not JSON),
/// and the response's traceparent (the service's span).
struct json_reply {
  checker k;
  json::value body;
  std::string span;
};

/// GET `path` as `s` on a new connection: check_common() wanting 200 OK, then the body's echo
/// of the caller (request_id, user, and the span in traceparent). `path` is a const char* so
/// that no std::string temporary stands in the caller's co_await (docs/notes/004).
baton::task<json_reply> get_json(tcp::endpoint ep, const identity& s, const char* path) {
  client_connection c;
  co_await c.connect(ep);
  request req = make_request(http::verb::get, path, s.id, s);
  const response res = co_await c.send(req);
  json_reply r{checker(s.id + " GET " + path), parse_or_null(res.body()),
               header(res, "traceparent")};
  check_common(r.k, res, http::status::ok, s.id, s);
  r.k.equal("request_id", str(r.body, "request_id"), s.id);
  r.k.equal("user", str(r.body, "user"), s.user);
  r.k.equal("traceparent", str(r.body, "traceparent"), r.span);
  co_return r;
}

baton::task<outcome> whoami_scenario(tcp::endpoint ep, const identity& s) {
  auto [k, body, span] = co_await get_json(ep, s, "/whoami");
  k.equal("trace_id", str(body, "trace_id"), s.trace.trace_id_hex());
  k.equal("received_traceparent", str(body, "received_traceparent"), s.trace.to_string());
  k.equal("tracestate", str(body, "tracestate"), "baton=selftest");
  k.equal("baggage", str(body, "baggage"), s.baggage);
  for (const std::string who : {"sub_task", "to_thread"}) {
    const json::value& seen = member(body, who);
    k.equal(who + ".request_id", str(seen, "request_id"), s.id);
    k.equal(who + ".user", str(seen, "user"), s.user);
    k.equal(who + ".traceparent", str(seen, "traceparent"), span);
  }
  // The database handle is inherit::tasks: the sub-task finds it, the to_thread job does not.
  k.equal("sub_task.db_in_context",
          json::serialize(member(member(body, "sub_task"), "db_in_context")), "true");
  k.equal("to_thread.db_in_context",
          json::serialize(member(member(body, "to_thread"), "db_in_context")), "false");
  co_return k.result();
}

baton::task<outcome> notes_scenario(tcp::endpoint ep, const identity& s, ledger& book) {
  client_connection c;
  co_await c.connect(ep);
  checker k(s.id + " POST+GET /notes");
  const std::string text = "note " + std::to_string(s.i) + " of " + s.user;
  request post = make_request(http::verb::post, "/notes", s.id, s);
  post.set(http::field::content_type, "text/plain");
  post.body() = text;
  const response created = co_await c.send(post);
  check_common(k, created, http::status::created, s.id, s);
  const json::value made = parse_or_null(created.body());
  k.equal("user", str(made, "user"), s.user);
  k.equal("request_id", str(made, "request_id"), s.id);
  const json::value& id = member(made, "id");
  const std::int64_t note_id = id.is_int64() ? id.as_int64() : -1;
  k.expect(note_id > 0, "no note id in " + created.body());
  if (created.result() == http::status::created && note_id > 0) {
    book.acknowledge({note_id, s.user, text, s.id});
  }
  k.expect(created.keep_alive(), "the connection was not kept alive");

  // The same connection, another request id: the context of the first request is gone.
  const std::string list_id = s.id + ".list";
  book.expect_request(list_id, s.user);
  request get = make_request(http::verb::get, "/notes", list_id, s);
  const response listed = co_await c.send(get);
  check_common(k, listed, http::status::ok, list_id, s);
  const json::value all = parse_or_null(listed.body());
  k.equal("user", str(all, "user"), s.user);
  k.equal("request_id", str(all, "request_id"), list_id);
  const json::value& notes = member(all, "notes");
  k.expect(notes.is_array() && notes.as_array().size() == 1,
           "expected exactly the user's one note: " + listed.body());
  if (notes.is_array() && notes.as_array().size() == 1) {
    const json::value& n = notes.as_array()[0];
    k.equal("note.text", str(n, "text"), text);
    k.equal("note.request_id", str(n, "request_id"), s.id);
    k.equal("note.id", json::serialize(member(n, "id")), std::to_string(note_id));
  }
  co_return k.result();
}

baton::task<outcome> chain_scenario(tcp::endpoint ep, const identity& s) {
  auto [k, body, span] = co_await get_json(ep, s, "/chain");
  k.equal("sent_traceparent", str(body, "sent_traceparent"), span);
  const json::value& callee = member(body, "callee");
  k.equal("callee.request_id", str(callee, "request_id"), s.id);
  k.equal("callee.user", str(callee, "user"), s.user);
  k.equal("callee.trace_id", str(callee, "trace_id"), s.trace.trace_id_hex());
  k.equal("callee.received_traceparent", str(callee, "received_traceparent"), span);
  k.expect(str(callee, "traceparent") != span, "the callee did not start its own span");
  k.equal("callee.tracestate", str(callee, "tracestate"), "baton=selftest");
  k.equal("callee.baggage", str(callee, "baggage"), s.baggage + ",hop=chain");
  k.equal("callee.to_thread.user", str(member(callee, "to_thread"), "user"), s.user);
  co_return k.result();
}

baton::task<outcome> hello_scenario(tcp::endpoint ep, const identity& s) {
  client_connection c;
  co_await c.connect(ep);
  request req = make_request(http::verb::get, "/hello", s.id, s);
  const response res = co_await c.send(req);
  checker k(s.id + " GET /hello");
  check_common(k, res, http::status::ok, s.id, s);
  k.equal("body", res.body(), "hello, " + s.user + "\n");
  co_return k.result();
}

baton::task<outcome> scenario(tcp::endpoint ep, int i, ledger& book) {
  static const char* const kinds[] = {"whoami", "notes", "chain", "hello"};
  const identity s = make_identity(i, kinds[i % 4]);
  book.expect_request(s.id, s.user);
  try {
    switch (i % 4) {
      case 0:
        co_return co_await whoami_scenario(ep, s);
      case 1:
        co_return co_await notes_scenario(ep, s, book);
      case 2:
        co_return co_await chain_scenario(ep, s);
      default:
        co_return co_await hello_scenario(ep, s);
    }
  } catch (const baton::cancelled_error&) {
    throw;
  } catch (const std::exception& e) {
    co_return outcome{verdict::failed, s.id + ": " + e.what()};
  }
}

// ---- malformed input and edge cases -------------------------------------------------------

/// Sends raw bytes; the service must answer `want` and then close the connection.
baton::task<void> expect_rejected(tcp::endpoint ep, std::string label, std::string bytes,
                                  http::status want, std::vector<std::string>& problems) {
  client_connection c;
  co_await c.connect(ep);
  auto sending = c.send_raw(std::move(bytes));
  const response res = co_await std::move(sending);
  if (res.result() != want) {
    problems.push_back(label + ": status " + std::to_string(res.result_int()) + ", expected " +
                       std::to_string(static_cast<unsigned>(want)));
  }
  if (res.keep_alive()) problems.push_back(label + ": the response did not say Connection: close");
  bool closed = false;
  try {
    co_await baton::wait_for(c.receive(), 3s);
  } catch (const boost::system::system_error& e) {
    closed = e.code() == http::error::end_of_stream || e.code() == boost::asio::error::eof ||
             e.code() == boost::asio::error::connection_reset;
  } catch (const baton::timeout_error&) {
  }
  if (!closed) problems.push_back(label + ": the service did not close the connection");
}

/// A normal request still works: the service carried on.
baton::task<void> expect_serving(tcp::endpoint ep, const std::string& after, ledger& book,
                                 std::vector<std::string>& problems) {
  std::string kind = "after-" + after;
  for (char& ch : kind) ch = ch == ' ' ? '-' : ch;
  const identity s = make_identity(static_cast<int>(problems.size()), kind);
  book.expect_request(s.id, s.user);
  const outcome o = co_await hello_scenario(ep, s);
  if (o.v != verdict::ok) problems.push_back("after " + after + ": " + o.detail);
}

baton::task<std::string> edge_cases(tcp::endpoint ep, ledger& book,
                                    std::vector<std::string>& problems) {
  const std::size_t before = problems.size();
  struct malformed {
    std::string label, bytes;
    http::status want;
  };
  const std::vector<malformed> cases = {
      {"bad request line", "BAD REQUEST LINE\r\n\r\n", http::status::bad_request},
      {"oversized header",
       "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(16 * 1024, 'a') + "\r\n\r\n",
       http::status::request_header_fields_too_large},
      {"oversized body",
       "POST /notes HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" +
           std::string(100000, 'b'),
       http::status::payload_too_large},
  };
  for (const malformed& m : cases) {
    // Named before awaiting: no std::string temporary inside a co_await (docs/notes/004).
    auto rejected = expect_rejected(ep, m.label, m.bytes, m.want, problems);
    co_await std::move(rejected);
    auto serving = expect_serving(ep, m.label, book, problems);
    co_await std::move(serving);
  }

  {  // a deadline: /slow for 3 s with 100 ms allowed is a 504, quickly
    const identity s = make_identity(0, "deadline");
    book.expect_request(s.id, s.user);
    client_connection c;
    co_await c.connect(ep);
    request req = make_request(http::verb::get, "/slow?ms=3000", s.id, s);
    req.set("X-Deadline-Ms", "100");
    const auto t0 = std::chrono::steady_clock::now();
    const response res = co_await c.send(req);
    const auto took = std::chrono::steady_clock::now() - t0;
    checker k("deadline");
    check_common(k, res, http::status::gateway_timeout, s.id, s);
    k.expect(
        took < 1500ms,
        "the 504 took " +
            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()) +
            " ms");
    k.expect(res.keep_alive(), "the connection was closed after a 504");
    if (auto o = k.result(); o.v != verdict::ok) problems.push_back(o.detail);
  }
  {  // no headers of ours: a generated request id, the anonymous user, a new trace
    client_connection c;
    co_await c.connect(ep);
    request req{http::verb::get, "/hello", 11};
    req.set(http::field::host, "127.0.0.1");
    const response res = co_await c.send(req);
    if (res.result() != http::status::ok || res.body() != "hello, anonymous\n" ||
        header(res, "X-Request-Id").rfind("r-", 0) != 0 ||
        !baton::trace_parent::parse(header(res, "traceparent"))) {
      problems.push_back("anonymous request: " + std::to_string(res.result_int()) + " " +
                         res.body() + " id " + header(res, "X-Request-Id"));
    }
  }
  {  // an unknown path
    client_connection c;
    co_await c.connect(ep);
    request req{http::verb::get, "/nope", 11};
    req.set(http::field::host, "127.0.0.1");
    const response res = co_await c.send(req);
    if (res.result() != http::status::not_found) problems.push_back("/nope was not a 404");
  }
  co_return problems.size() == before
      ? "bad request line -> 400, oversized header -> 431, oversized body -> 413 (each closed, "
        "the service kept serving), deadline -> 504, no headers -> anonymous, /nope -> 404"
      : "some edge cases failed";
}

// ---- graceful shutdown --------------------------------------------------------------------

/// A note posted slowly (the handler waits 1.5 s first), so that it is in flight at SIGTERM.
baton::task<outcome> late_note(tcp::endpoint ep, int k, ledger& book) {
  const identity s = make_identity(k, "late");
  book.expect_request(s.id, s.user);
  try {
    client_connection c;
    co_await c.connect(ep);
    const std::string text = "late note " + std::to_string(k);
    request post = make_request(http::verb::post, "/notes?delay_ms=1500", s.id, s);
    post.set("X-Deadline-Ms", "10000");
    post.body() = text;
    const response res = co_await c.send(post);
    checker chk(s.id + " POST /notes during the shutdown");
    check_common(chk, res, http::status::created, s.id, s);
    chk.expect(!res.keep_alive(), "the response during the shutdown did not close the connection");
    const json::value made = parse_or_null(res.body());
    const json::value& id = member(made, "id");
    if (res.result() == http::status::created && id.is_int64()) {
      book.acknowledge({id.as_int64(), s.user, text, s.id});
    }
    co_return chk.result();
  } catch (const baton::cancelled_error&) {
    throw;
  } catch (const std::exception& e) {
    co_return outcome{verdict::failed, s.id + ": " + e.what()};
  }
}

baton::task<std::string> shutdown_check(server& srv, tcp::endpoint ep, ledger& book,
                                        baton::task_handle<void>& serving,
                                        std::vector<std::string>& problems) {
  const std::size_t before = problems.size();
  constexpr int late_notes = 8;

  // A keep-alive connection that sits idle: the shutdown must close it.
  const identity s = make_identity(0, "idle");
  book.expect_request(s.id, s.user);
  client_connection idle;
  co_await idle.connect(ep);
  request hi = make_request(http::verb::get, "/hello", s.id, s);
  const response first = co_await idle.send(hi);
  if (!first.keep_alive()) problems.push_back("idle connection: not kept alive");

  std::vector<baton::task_handle<outcome>> posts;
  for (int k = 0; k < late_notes; ++k) posts.push_back(baton::spawn(late_note(ep, k, book)));
  // All of them must be read (in flight) before the signal; a slow machine gets 10 s for it.
  for (int waited = 0; srv.in_flight() < late_notes && waited < 2000; ++waited) {
    co_await baton::sleep(5ms);
  }
  if (srv.in_flight() < late_notes) {
    problems.push_back("only " + std::to_string(srv.in_flight()) + " notes in flight at SIGTERM");
  }
  std::raise(SIGTERM);  // the real path: signal_set -> stop_on_signal -> server::stop()

  for (auto& p : posts) {
    const outcome o = co_await p;
    if (o.v != verdict::ok) problems.push_back(o.detail);
  }
  bool closed = false;
  try {
    co_await baton::wait_for(idle.receive(), 3s);
  } catch (const boost::system::system_error& e) {
    closed = e.code() == http::error::end_of_stream || e.code() == boost::asio::error::eof ||
             e.code() == boost::asio::error::connection_reset;
  } catch (const baton::timeout_error&) {
  }
  if (!closed) problems.push_back("the idle keep-alive connection was not closed at shutdown");

  co_await serving;  // server::run() returned: every connection ended

  bool refused = false;
  try {
    client_connection late;
    co_await late.connect(ep);
  } catch (const boost::system::system_error&) {
    refused = true;
  }
  if (!refused) problems.push_back("a connection was accepted after the shutdown");
  co_return problems.size() == before
      ? "SIGTERM with " + std::to_string(late_notes) +
            " notes in flight: all acknowledged with Connection: close; the idle keep-alive "
            "connection closed; new connections refused"
      : "the shutdown check failed";
}

// ---- the whole run ------------------------------------------------------------------------

struct run_result {
  int ok = 0, mismatched = 0, failed = 0;
  std::vector<std::string> scenario_problems;
  std::vector<std::string> problems;  // edge cases, shutdown, database, log
  std::vector<std::string> notes;     // what passed, for the summary
  tcp::endpoint ep;
};

baton::task<run_result> self_test_main(server& srv, int n, ledger& book) {
  run_result r;
  srv.listen();
  r.ep = srv.local_endpoint();
  boost::asio::signal_set signals(baton::current_executor(), SIGINT, SIGTERM);
  auto watcher = baton::spawn(stop_on_signal(signals, srv));
  auto serving = baton::spawn(srv.run());

  std::vector<baton::task_handle<outcome>> scenarios;
  scenarios.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) scenarios.push_back(baton::spawn(scenario(r.ep, i, book)));
  for (auto& h : scenarios) {
    const outcome o = co_await h;
    if (o.v == verdict::ok) {
      ++r.ok;
    } else {
      (o.v == verdict::mismatched ? r.mismatched : r.failed) += 1;
      r.scenario_problems.push_back(o.detail);
    }
  }

  std::string stage = "edge cases";
  try {
    r.notes.push_back(co_await edge_cases(r.ep, book, r.problems));
    stage = "shutdown";
    r.notes.push_back(co_await shutdown_check(srv, r.ep, book, serving, r.problems));
  } catch (const baton::cancelled_error&) {
    throw;
  } catch (const std::exception& e) {
    r.problems.push_back(stage + ": " + e.what());
  }
  srv.stop();  // (already stopped, unless a check failed early)
  co_await serving;
  watcher.cancel();
  try {
    co_await watcher;
  } catch (const baton::cancelled_error&) {
  }
  co_return r;
}

/// Every log line of a request the test sent shows that request's id and user.
void check_log(const fs::path& file, const std::map<std::string, std::string>& user_of,
               run_result& r) {
  std::ifstream in(file);
  std::map<std::string, int> lines_of;
  std::size_t checked = 0, from_threads = 0;
  auto field = [](const std::string& line, const std::string& key) -> std::string {
    const auto at = line.find(key);
    if (at == std::string::npos) return {};
    const auto start = at + key.size();
    return line.substr(start, line.find_first_of(" ]", start) - start);
  };
  for (std::string line; std::getline(in, line);) {
    const std::string id = field(line, " request_id=");
    const auto it = user_of.find(id);
    if (it == user_of.end()) continue;
    ++checked;
    ++lines_of[id];
    if (line.find("to_thread job") != std::string::npos ||
        line.find("stored note") != std::string::npos ||
        line.find("listed ") != std::string::npos) {
      ++from_threads;
    }
    const std::string user = field(line, " user=");
    if (user != it->second) {
      r.problems.push_back("log line of " + id + " shows user '" + user + "': " + line);
    }
  }
  for (const auto& [id, user] : user_of) {
    if (lines_of.count(id) == 0) r.problems.push_back("no log line for request " + id);
  }
  r.notes.push_back(std::to_string(checked) + " log lines of " + std::to_string(user_of.size()) +
                    " requests show their own request id and user (" +
                    std::to_string(from_threads) + " of them logged by to_thread jobs)");
}

}  // namespace

int run_self_test(int requests, unsigned threads) {
  std::string dir_template = (fs::temp_directory_path() / "baton-http-selftest-XXXXXX").string();
  if (::mkdtemp(dir_template.data()) == nullptr) {
    std::perror("http_service: mkdtemp");
    return 2;
  }
  const fs::path dir = dir_template;
  const fs::path db_file = dir / "notes.db";
  const fs::path log_file = dir / "service.log";
  setup_logging({.file = log_file.string(), .level = spdlog::level::info});

  constexpr std::size_t blocking_threads = 8;
  ledger book;
  run_result r;
  {
    notes_db db(db_file.string(), blocking_threads);  // outlives the loop and its pool jobs
    server_options so;
    so.port = 0;
    so.shutdown_grace = 5s;
    server srv(so, db);
    baton::run_options ro;
    ro.threads = threads;
    ro.blocking_threads = blocking_threads;
    r = baton::run(self_test_main(srv, requests, book), ro);
  }  // the last connection closes: the WAL is checkpointed into notes.db
  spdlog::default_logger()->flush();

  // The database, reopened from the file: every acknowledged note is there, as acknowledged.
  {
    notes_db reopened(db_file.string(), 1);
    for (const auto& n : book.acknowledged) {
      bool found = false;
      for (const auto& stored : reopened.list(n.user, 100)) {
        found = found || (stored.id == n.id && stored.text == n.text &&
                          stored.request_id == n.request_id && stored.user == n.user);
      }
      if (!found)
        r.problems.push_back("acknowledged note " + std::to_string(n.id) + " of " + n.user +
                             " is not in the database");
    }
    r.notes.push_back(std::to_string(book.acknowledged.size()) +
                      " acknowledged notes are all in the database after the shutdown (" +
                      std::to_string(reopened.count_all()) + " rows)");
  }
  check_log(log_file, book.user_of, r);

  std::fprintf(stderr, "self-test: %d concurrent requests, %u loop threads, service on %s:%u\n",
               requests, threads, r.ep.address().to_string().c_str(), r.ep.port());
  for (const auto& n : r.notes) std::fprintf(stderr, "self-test: %s\n", n.c_str());
  std::size_t shown = 0;
  for (const auto& p : r.scenario_problems) {
    if (shown++ < 20) std::fprintf(stderr, "self-test: FAILED %s\n", p.c_str());
  }
  for (const auto& p : r.problems) {
    if (shown++ < 40) std::fprintf(stderr, "self-test: FAILED %s\n", p.c_str());
  }
  if (r.failed > 0) std::fprintf(stderr, "self-test: %d requests failed outright\n", r.failed);
  const bool passed = r.mismatched == 0 && r.failed == 0 && r.problems.empty();
  if (passed) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  } else {
    std::fprintf(stderr, "self-test: kept %s (notes.db, service.log)\n", dir.c_str());
  }
  std::printf("%d ok, %d mismatched\n", r.ok, r.mismatched);
  std::fflush(stdout);
  return passed ? 0 : 1;
}

}  // namespace http_service
