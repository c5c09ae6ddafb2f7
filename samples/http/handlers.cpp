// SPDX-License-Identifier: BSL-1.0
// The endpoints. They read the request id, the user, the deadline and the trace from the
// context, never from a parameter.
#include "handlers.hpp"

#include "client.hpp"
#include "context.hpp"
#include "notes_db.hpp"
#include "server.hpp"

#include <baton/sleep.hpp>
#include <baton/task_group.hpp>
#include <baton/to_thread.hpp>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <vector>

namespace http_service {

namespace {

using namespace std::chrono_literals;

/// What the code calling it sees in its context: the proof that the context arrived.
json::object context_view() {
  json::object o;
  o["request_id"] = current_request_id.get("");
  o["user"] = current_user.get("");
  const auto span = baton::current_trace();
  o["traceparent"] = span ? span->to_string() : std::string();
  return o;
}

baton::task<response> index() {
  co_return text_response(
      http::status::ok,
      "GET /hello\nGET /whoami\nPOST /notes[?delay_ms=N]\nGET /notes[?limit=N&before=ID]\n"
      "GET /slow?ms=N\nGET /chain\nGET /healthz\n");
}

baton::task<response> hello() {
  spdlog::info("saying hello");  // the log line shows the request id and the user by itself
  co_return text_response(http::status::ok, "hello, " + current_user.get() + "\n");
}

// ---- /whoami: the context, as three pieces of code see it ----------------------------------

baton::task<json::object> seen_by_sub_task() {
  co_await baton::sleep(1ms);  // it may resume on another loop thread: the context follows
  spdlog::info("sub-task looked at its context");
  json::object o = context_view();
  o["db_in_context"] = current_db.try_get().has_value();  // inherit::tasks: yes
  co_return o;
}

baton::task<json::object> seen_by_thread_job(notes_db& db) {
  co_return co_await baton::to_thread([&db] {
    // A blocking-pool thread, inside a copy of the awaiting task's context.
    json::object o = context_view();
    o["db_in_context"] = current_db.try_get().has_value();  // inherit::tasks: no
    o["notes"] = db.count(current_user.get());
    spdlog::info("to_thread job counted {} notes", o["notes"].as_int64());
    return o;
  });
}

baton::task<response> whoami(const incoming& in) {
  baton::task_group both;  // the two fetches run at once; the first failure cancels the other
  auto by_task = both.spawn(seen_by_sub_task());
  auto by_thread = both.spawn(seen_by_thread_job(*current_db.get()));  // the handle, passed by hand
  co_await both.wait();

  json::object o = context_view();
  const auto span = baton::current_trace();
  o["trace_id"] = span ? span->trace_id_hex() : std::string();
  o["received_traceparent"] =
      in.received ? json::value(in.received->to_string()) : json::value(nullptr);
  o["tracestate"] = baton::current_trace_state().to_string();
  o["baggage"] = baton::current_baggage().to_string();
  o["deadline_ms"] = time_left().count();
  o["sub_task"] = co_await by_task;
  o["to_thread"] = co_await by_thread;
  spdlog::info("whoami answered");
  co_return json_response(http::status::ok, o);
}

// ---- /notes: SQLite through to_thread -----------------------------------------------------

baton::task<response> add_note(server& srv, const incoming& in) {
  if (const auto d = query_param(in.url, "delay_ms")) {
    if (const auto ms = to_number(*d)) {
      co_await baton::sleep(std::chrono::milliseconds(std::min(*ms, 60'000LL)));
    }
  }
  if (in.req.body().empty()) co_return error_response(http::status::bad_request, "empty note");
  if (!plain_text(in.req.body())) {
    co_return error_response(http::status::bad_request,
                             "a note is UTF-8 text without control characters but tab, LF, CR");
  }

  notes_db& db = srv.db();
  // The job gets its own copy of the text: if the request is cancelled (deadline, shutdown),
  // the task stops waiting at once while the job may still run.
  auto storing = baton::to_thread([&db, text = in.req.body()](std::stop_token abandoned) {
    // The request gave up before the job started: store nothing it cannot acknowledge.
    if (abandoned.stop_requested()) throw std::runtime_error("request abandoned");
    // The user and the request id come from the context, on this pool thread too.
    const std::int64_t id = db.add(current_user.get(), text, current_request_id.get());
    spdlog::info("stored note {}", id);
    return id;
  });
  const std::int64_t id = co_await storing;  // named first: see docs/notes/004
  json::object o = context_view();
  o.erase("traceparent");
  o["id"] = id;
  co_return json_response(http::status::created, o);
}

/// One page of GET /notes: the notes' JSON, comma-separated, and where the next page starts.
struct notes_page {
  std::string items;
  std::size_t count = 0;
  std::optional<std::int64_t> next_before;  // set when more notes follow
};

/// The page: at most `limit` notes below `before`, their JSON at most `budget` bytes. Runs in
/// a to_thread job and keeps one row and the page in memory. A note does fit in an empty page
/// (server_options::page_limit); one stored before notes were checked might not, and is then
/// shortened and marked `"truncated":true`.
notes_page build_page(notes_db& db, std::int64_t before, std::size_t limit, std::size_t budget) {
  notes_page page;
  std::int64_t last_id = 0;
  db.list_each(current_user.get(), before, limit + 1, [&](const notes_db::note& n) {
    if (page.count == limit) {
      page.next_before = last_id;  // more follow: the next page starts below the last one
      return false;
    }
    json::object o{
        {"id", n.id}, {"text", n.text}, {"request_id", n.request_id}, {"created_at", n.created_at}};
    std::string one = to_json_text(o);
    one.pop_back();  // the newline
    if (page.count == 0 && one.size() > budget) {
      std::string shorter = to_valid_utf8(n.text.substr(0, budget / 8));
      o["text"] = std::move(shorter);
      o["truncated"] = true;
      one = to_json_text(o);
      one.pop_back();
    }
    if (page.items.size() + one.size() + 1 > budget) {
      page.next_before = n.id + 1;  // this note starts the next page
      return false;
    }
    if (page.count > 0) page.items.push_back(',');
    page.items += one;
    ++page.count;
    last_id = n.id;
    return true;
  });
  spdlog::info("listed {} notes", page.count);
  return page;
}

baton::task<response> list_notes(server& srv, const incoming& in) {
  std::size_t limit = 20;
  std::int64_t before = INT64_MAX;
  if (const auto p = query_param(in.url, "limit")) {
    const auto n = to_number(*p);
    if (!n || *n < 1 || *n > 100) {
      co_return error_response(http::status::bad_request, "limit: a number from 1 to 100");
    }
    limit = static_cast<std::size_t>(*n);
  }
  if (const auto p = query_param(in.url, "before")) {
    const auto n = to_number(*p);
    if (!n) co_return error_response(http::status::bad_request, "before: a note id");
    before = *n;
  }
  // The page's memory is reserved before it is built, and held until it is written.
  std::optional<response_lease> lease = srv.reserve_response(srv.options().page_limit);
  if (!lease) {
    co_return error_response(http::status::service_unavailable, "too many large responses at once");
  }
  json::object head = context_view();
  head.erase("traceparent");
  const std::size_t budget = srv.options().page_limit - 512;  // head, "next", brackets
  notes_db& db = srv.db();
  auto listing = baton::to_thread(
      [&db, before, limit, budget] { return build_page(db, before, limit, budget); });
  notes_page page = co_await listing;
  if (page.next_before) {
    head["next"] =
        "/notes?before=" + std::to_string(*page.next_before) + "&limit=" + std::to_string(limit);
  }
  std::string body = to_json_text(head);
  body.resize(body.size() - 2);  // "}\n"
  body.reserve(body.size() + page.items.size() + 16);
  body += ",\"notes\":[";
  body += page.items;
  body += "]}\n";
  page.items = std::string();
  lease->shrink_to(body.size());
  in.lease = std::move(*lease);
  response res{http::status::ok, 11};
  res.set(http::field::content_type, "application/json");
  res.body() = std::move(body);
  co_return res;
}

// ---- /slow: the deadline ------------------------------------------------------------------

baton::task<response> slow(const incoming& in) {
  long long ms = 100;
  if (const auto p = query_param(in.url, "ms")) {
    const auto n = to_number(*p);
    if (!n) co_return error_response(http::status::bad_request, "ms: a number of milliseconds");
    ms = std::min(*n, 60'000LL);
  }
  spdlog::info("sleeping {} ms, {} ms before the deadline", ms, time_left().count());
  co_await baton::sleep(std::chrono::milliseconds(ms));  // cancelled at the deadline
  co_return json_response(http::status::ok, json::object{{"slept_ms", ms}});
}

// ---- /chain: an outgoing call that carries the context ------------------------------------

baton::task<response> chain(server& srv) {
  baton::baggage bag = baton::current_baggage();
  (void)bag.set("hop", "chain");
  (void)baton::baggage_var().set(std::move(bag));  // this request's context only

  tcp::endpoint self = srv.local_endpoint();
  if (self.address().is_unspecified()) self.address(boost::asio::ip::address_v4::loopback());
  request out{http::verb::get, "/whoami", 11};
  out.set(http::field::host, self.address().to_string() + ":" + std::to_string(self.port()));
  out.set("X-Request-Id", current_request_id.get());
  out.set("X-User", current_user.get());
  out.set("X-Deadline-Ms", std::to_string(std::max<long long>(1, time_left().count())));
  baton::inject([&out](std::string_view name, std::string value) { out.set(name, value); });
  const std::string sent(out["traceparent"]);

  spdlog::info("calling {}:{}/whoami", self.address().to_string(), self.port());
  auto calling = fetch(self, std::move(out));
  std::optional<response> answer;
  std::string problem;
  try {
    answer = co_await std::move(calling);  // cancelled with the request at its deadline
  } catch (const boost::system::system_error& e) {
    problem = e.what();
  }
  if (!answer) co_return error_response(http::status::bad_gateway, "/whoami: " + problem);
  if (answer->result() != http::status::ok) {
    co_return error_response(http::status::bad_gateway,
                             "/whoami answered " + std::to_string(answer->result_int()));
  }
  json::object o = context_view();
  o["sent_traceparent"] = sent;
  o["callee"] = json::parse(answer->body());
  co_return json_response(http::status::ok, o);
}

baton::task<response> not_allowed(std::string_view allow) {
  response res = error_response(http::status::method_not_allowed, "method not allowed");
  res.set(http::field::allow, allow);
  co_return res;
}

}  // namespace

std::function<std::optional<baton::task<response>>(const incoming&)> extra_route;

baton::task<response> route(server& srv, const incoming& in) {
  if (extra_route) {
    if (auto handled = extra_route(in)) co_return co_await std::move(*handled);
  }
  const http::verb m = in.req.method();
  const std::string_view p = in.path;
  if (p == "/notes") {
    if (m == http::verb::post) co_return co_await add_note(srv, in);
    if (m == http::verb::get) co_return co_await list_notes(srv, in);
    co_return co_await not_allowed("GET, POST");
  }
  if (p == "/" || p == "/hello" || p == "/whoami" || p == "/slow" || p == "/chain" ||
      p == "/healthz") {
    if (m != http::verb::get) co_return co_await not_allowed("GET");
    if (p == "/") co_return co_await index();
    if (p == "/hello") co_return co_await hello();
    if (p == "/whoami") co_return co_await whoami(in);
    if (p == "/slow") co_return co_await slow(in);
    if (p == "/chain") co_return co_await chain(srv);
    co_return text_response(http::status::ok, "ok\n");
  }
  co_return error_response(http::status::not_found, "no such endpoint");
}

}  // namespace http_service
