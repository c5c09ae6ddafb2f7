// SPDX-License-Identifier: BSL-1.0
// server: accept loop, connection tasks, request tasks and the graceful shutdown.
#include "server.hpp"

#include "context.hpp"
#include "handlers.hpp"
#include "notes_db.hpp"

#include <baton/executor.hpp>
#include <baton/sleep.hpp>
#include <baton/spdlog.hpp>
#include <baton/spawn.hpp>
#include <baton/trace_context.hpp>
#include <baton/use_task.hpp>
#include <baton/wait_for.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace http_service {

using namespace std::chrono_literals;

/// One connection, as the server tracks it for the shutdown. Guarded by server::mutex_.
struct server::connection_slot {
  std::uint64_t id = 0;
  std::optional<baton::task_handle<void>> handle;  // stored by the accept loop after spawn
  bool idle = true;  // between requests: no byte of a request read yet
  std::chrono::steady_clock::time_point idle_since = std::chrono::steady_clock::now();
  // Became idle after the shutdown began: it waits shutdown_last_call at most, by itself.
  bool idle_in_shutdown = false;
  bool cancelled = false;  // the shutdown cancelled it, or close_idle() did
  bool ended = false;
};

void response_lease::shrink_to(std::size_t bytes) noexcept {
  if (pool_ == nullptr || bytes >= bytes_) return;
  // relaxed: a budget counter; no other memory is published through it.
  pool_->fetch_sub(bytes_ - bytes, std::memory_order_relaxed);
  bytes_ = bytes;
}

void response_lease::release() noexcept {
  if (pool_ != nullptr) pool_->fetch_sub(bytes_, std::memory_order_relaxed);  // as above
  pool_ = nullptr;
}

namespace {

bool valid_request_id(std::string_view s) {
  return !s.empty() && s.size() <= 128 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

bool valid_user(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '@';
  });
}

std::string_view view(beast::string_view s) { return {s.data(), s.size()}; }

/// Reads and drops what the client still sends, until it closes, 1 MiB, or an error.
baton::task<void> drain(tcp::socket& sock) {
  std::array<char, 4096> scratch;
  std::size_t total = 0;
  while (total < (1u << 20)) {
    total += co_await sock.async_read_some(boost::asio::buffer(scratch), baton::use_task);
  }
}

/// Lingering close, after the last response: says we are done sending, then reads what the
/// client still sends (the rest of an oversized request, a request it sent before it read
/// `Connection: close`) until it closes, for at most 1 s. Closing at once with unread data
/// would make the kernel send a RST, which can destroy the response before the client reads
/// it.
baton::task<void> linger_close(tcp::socket& sock) {
  boost::system::error_code ec;
  sock.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  try {
    co_await baton::wait_for(drain(sock), 1s);
  } catch (const baton::cancelled_error&) {
    throw;
  } catch (const std::exception&) {
    // end of stream (the usual end), a time-out or a reset: the connection is over anyway
  }
}

/// Reads a request: the header, then, unless check_framing() refuses it (returned: answer it
/// and close), and after `100 Continue` when the client waits for it, the body. A body over
/// the limit is refused from its Content-Length, before the client sends it.
baton::task<std::optional<framing_error>> read_request(
    tcp::socket& sock, beast::flat_buffer& buffer,
    http::request_parser<http::string_body>& parser) {
  co_await http::async_read_header(sock, buffer, parser, baton::use_task);
  if (auto refused = check_framing(parser.get())) co_return refused;
  if (parser.is_done()) co_return std::nullopt;
  if (beast::iequals(view(parser.get()[http::field::expect]), "100-continue")) {
    http::response<http::empty_body> go_on{http::status::continue_, parser.get().version()};
    co_await http::async_write(sock, go_on, baton::use_task);
  }
  co_await http::async_read(sock, buffer, parser, baton::use_task);
  co_return std::nullopt;
}

}  // namespace

server::server(server_options opts, notes_db& db) : opts_(std::move(opts)), db_(db) {
  if (opts_.page_limit < 2 * opts_.body_limit + 4096) {
    throw std::invalid_argument(
        "http_service: page_limit must be at least 2 * body_limit + 4 KiB,"
        " so that any note fits in a page");
  }
  if (opts_.response_memory < opts_.page_limit) {
    throw std::invalid_argument("http_service: response_memory must hold at least one page");
  }
}

std::optional<response_lease> server::reserve_response(std::size_t bytes) noexcept {
  // relaxed: a budget counter; no other memory is published through it.
  std::size_t held = response_bytes_.load(std::memory_order_relaxed);
  do {
    if (held + bytes > opts_.response_memory) return std::nullopt;
  } while (!response_bytes_.compare_exchange_weak(held, held + bytes, std::memory_order_relaxed));
  return response_lease(response_bytes_, bytes);
}

server::~server() = default;

void server::listen() {
  const tcp::endpoint ep(opts_.address, opts_.port);
  acceptor_.emplace(baton::current_executor());
  acceptor_->open(ep.protocol());
  acceptor_->set_option(tcp::acceptor::reuse_address(true));
  acceptor_->bind(ep);
  acceptor_->listen(boost::asio::socket_base::max_listen_connections);
  // For accept_loop's synchronous accepts (would_block instead of waiting); async ones are
  // not affected.
  acceptor_->non_blocking(true);
  endpoint_ = acceptor_->local_endpoint();
  connection_cap_ = opts_.max_connections;
  if (connection_cap_ == 0) {
    // Each connection is a descriptor; 64 stay for SQLite, the log, the loop and /chain.
    rlimit r{};
    const bool known = getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur != RLIM_INFINITY;
    connection_cap_ = known && r.rlim_cur > 128 ? static_cast<std::size_t>(r.rlim_cur) - 64 : 64;
    if (!known) connection_cap_ = 100'000;
  }
}

tcp::endpoint server::local_endpoint() const { return endpoint_; }

void server::stop() noexcept {
  // relaxed: the flag only decides what a response or a late request is told. A connection
  // that reads it late sends one more keep-alive response and answers the request after it,
  // so it is still correct; no other memory is published through the flag.
  stopping_flag_.store(true, std::memory_order_relaxed);
  stop_requested_.set();
}

baton::task<void> stop_on_signal(boost::asio::signal_set& signals, server& srv) {
  const int signal = co_await signals.async_wait(baton::use_task);
  spdlog::info("signal {}: shutting down gracefully", signal);
  srv.stop();
}

// ---- shutdown -----------------------------------------------------------------------------

baton::task<void> server::run() {
  auto accepting = baton::spawn(accept_loop(), {.name = "accept loop"});
  co_await stop_requested_.wait();

  // 1. No new connections: the accept loop ends at its pending accept, the port closes.
  accepting.cancel();
  try {
    co_await accepting;
  } catch (const baton::cancelled_error&) {
  }
  boost::system::error_code ignored;
  acceptor_->close(ignored);

  // 2. stop() set stopping_flag_: every response built from then on says Connection: close,
  // and a request whose reading begins then gets 503 (Connection: close) without running.
  // stopping_ tells connections that become idle from now on to wait for their next request
  // for shutdown_last_call at most.
  bool empty;
  std::size_t open;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    empty = connections_.empty();
    open = connections_.size();
  }
  spdlog::info("shutting down: stopped accepting; {} connections open, {} requests in flight", open,
               in_flight());
  if (empty) drained_.set();

  // 3. Last call. A connection waiting for a request got a keep-alive response, so its client
  // may be sending one now: it is kept open for shutdown_last_call, and a request that comes
  // is answered. Then the connections that were idle before the shutdown are cancelled (those
  // that became idle since time themselves out).
  const auto last_call = std::min(opts_.shutdown_last_call, opts_.shutdown_grace);
  bool drained = co_await drained_within(last_call);
  if (!drained) cancel_connections(which::idle_before_shutdown);

  // 4. The requests in flight finish, within the grace period.
  if (!drained) drained = co_await drained_within(opts_.shutdown_grace - last_call);
  if (!drained) {
    spdlog::warn("shutdown: grace period over; cancelling what is left");
    cancel_connections(which::all);
    co_await wait_drained();
  }
  spdlog::info("stopped after serving {} requests", served());
}

baton::task<void> server::wait_drained() { co_await drained_.wait(); }

baton::task<bool> server::drained_within(std::chrono::milliseconds limit) {
  try {
    co_await baton::wait_for(wait_drained(), limit);
  } catch (const baton::timeout_error&) {
    co_return false;
  }
  co_return true;
}

void server::cancel_connections(which victims_are) {
  std::vector<baton::task_handle<void>> victims;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, slot] : connections_) {
      const bool chosen = victims_are == which::all || (slot->idle && !slot->idle_in_shutdown);
      if (slot->handle && !slot->cancelled && chosen) {
        slot->cancelled = true;
        victims.push_back(*slot->handle);
      }
    }
  }
  // Outside the lock: a connection flagged idle above either is still waiting (the cancel
  // interrupts the wait) or has just woken and will find `cancelled` set in leave_idle().
  for (auto& h : victims) h.cancel();
}

std::optional<std::chrono::milliseconds> server::enter_idle(connection_slot& slot) {
  std::lock_guard lock(mutex_);
  if (slot.cancelled) return std::nullopt;
  slot.idle = true;
  slot.idle_since = std::chrono::steady_clock::now();
  slot.idle_in_shutdown = stopping_;
  // In the shutdown, the client may still send the request it meant to send when it read our
  // keep-alive response; it is answered if it comes within the last call.
  return stopping_ ? std::min(opts_.idle_timeout, opts_.shutdown_last_call) : opts_.idle_timeout;
}

bool server::leave_idle(connection_slot& slot) {
  std::lock_guard lock(mutex_);
  slot.idle = false;
  return !slot.cancelled;
}

bool server::at_cap() {
  std::lock_guard lock(mutex_);
  return open_ >= connection_cap_;
}

std::size_t server::close_idle(std::size_t n) {
  std::vector<baton::task_handle<void>> victims;
  {
    std::lock_guard lock(mutex_);
    std::vector<connection_slot*> idle;
    for (auto& [id, slot] : connections_) {
      if (slot->idle && !slot->cancelled && slot->handle) idle.push_back(slot.get());
    }
    const auto longest_idle = [](const connection_slot* a, const connection_slot* b) {
      return a->idle_since < b->idle_since;
    };
    if (idle.size() > n) {
      std::nth_element(idle.begin(), idle.begin() + static_cast<std::ptrdiff_t>(n), idle.end(),
                       longest_idle);
      idle.resize(n);
    }
    for (connection_slot* slot : idle) {
      slot->cancelled = true;
      victims.push_back(*slot->handle);
    }
  }
  // As in cancel_connections(): each is waiting (the cancel ends the wait), or has just woken
  // and leave_idle() finds it cancelled.
  for (auto& h : victims) h.cancel();
  return victims.size();
}

void server::connection_ended(connection_slot& slot) {
  bool now_drained;
  std::optional<baton::task_handle<void>> self;  // dropped outside the lock
  {
    std::lock_guard lock(mutex_);
    slot.ended = true;
    self = std::move(slot.handle);
    slot.handle.reset();
    --open_;
    connections_.erase(slot.id);
    now_drained = stopping_ && connections_.empty();
  }
  if (now_drained) drained_.set();
}

// ---- accepting ----------------------------------------------------------------------------

namespace {

bool out_of_descriptors(const boost::system::error_code& ec) {
  namespace errc = boost::system::errc;
  return ec == errc::too_many_files_open || ec == errc::too_many_files_open_in_system ||
         ec == errc::no_buffer_space || ec == errc::not_enough_memory;
}

/// One stretch of time in which the accept loop could not keep up: logged once when it
/// starts and once when the backlog is empty again.
struct overload_episode {
  bool active = false;
  std::chrono::steady_clock::time_point since;
  std::size_t pauses = 0;

  void begin(std::string_view cause, std::size_t open, std::size_t cap) {
    ++pauses;
    if (active) return;
    active = true;
    since = std::chrono::steady_clock::now();
    spdlog::warn(
        "accept paused: {}; {} connections open, cap {}; closing idle connections, "
        "backing off",
        cause, open, cap);
  }
  void end(std::size_t open) {
    if (!active) return;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - since)
                        .count();
    spdlog::info("accept resumed after {} ms and {} pauses; {} connections open", ms, pauses, open);
    active = false;
    pauses = 0;
  }
};

}  // namespace

baton::task<void> server::accept_loop() {
  constexpr auto least_pause = 5ms;
  constexpr auto longest_pause = 500ms;
  constexpr std::size_t idle_closed_at_once = 16;
  overload_episode episode;
  std::chrono::milliseconds pause = least_pause;
  const auto open_now = [this] {
    std::lock_guard lock(mutex_);
    return open_;
  };
  for (;;) {
    if (at_cap()) {
      // Until closed connections have let go of their descriptors, or busy ones have ended.
      episode.begin("at the connection cap", open_now(), connection_cap_);
      const bool closed_some = close_idle(idle_closed_at_once) > 0;
      co_await baton::sleep(closed_some ? least_pause : pause);
      if (!closed_some) pause = std::min(pause * 2, longest_pause);
      continue;
    }
    tcp::socket sock(baton::current_executor());
    boost::system::error_code ec;
    if (episode.active) {
      // Catching up: a connection is waiting or the backlog is empty (would_block).
      acceptor_->accept(sock, ec);
      if (ec == boost::asio::error::would_block) {
        episode.end(open_now());
        pause = least_pause;
        continue;
      }
    } else {
      try {
        sock = co_await acceptor_->async_accept(baton::use_task);
      } catch (const boost::system::system_error& e) {
        ec = e.code();
      }
    }
    if (out_of_descriptors(ec)) {
      episode.begin(ec.message(), open_now(), connection_cap_);
      const bool closed_some = close_idle(idle_closed_at_once) > 0;
      co_await baton::sleep(closed_some ? least_pause : pause);  // for descriptors to close
      if (!closed_some) pause = std::min(pause * 2, longest_pause);
      continue;
    }
    if (ec) continue;  // the client gave up before the accept (ECONNABORTED, ...)
    start_connection(std::move(sock));
    // Then whatever else already waits in the backlog (the acceptor is non-blocking), up to
    // 64: one connection per trip through the ready queue falls behind a connection storm.
    for (int more = 0; more < 64 && !episode.active && !at_cap(); ++more) {
      tcp::socket next(baton::current_executor());
      acceptor_->accept(next, ec);
      if (ec) break;  // would_block: the backlog is empty (other errors: the next round)
      start_connection(std::move(next));
    }
  }
}

void server::start_connection(tcp::socket sock) {
  auto slot = std::make_shared<connection_slot>();
  {
    std::lock_guard lock(mutex_);
    slot->id = ++next_connection_;
    connections_.emplace(slot->id, slot);
    ++open_;
  }
  auto h =
      baton::spawn(connection(std::move(sock), slot), {.name = "conn-" + std::to_string(slot->id)});
  std::lock_guard lock(mutex_);
  if (!slot->ended) slot->handle = std::move(h);  // (ended: it finished already)
}

// ---- a connection -------------------------------------------------------------------------

baton::task<void> server::connection(tcp::socket sock, std::shared_ptr<connection_slot> slot) {
  (void)current_connection.set(slot->id);  // this task's context, and its requests' copies
  (void)current_db.set(&db_);  // the same, but no to_thread job sees it (inherit::tasks)
  boost::system::error_code ec;
  sock.set_option(tcp::no_delay(true), ec);
  beast::flat_buffer buffer;
  try {
    co_await serve_connection(sock, buffer, *slot);
  } catch (const baton::cancelled_error&) {
    spdlog::debug("connection cancelled by the shutdown");
  } catch (const std::exception& e) {
    spdlog::debug("connection ended: {}", e.what());  // the client went away, mostly
  }
  sock.shutdown(tcp::socket::shutdown_both, ec);
  sock.close(ec);
  connection_ended(*slot);
}

baton::task<void> server::serve_connection(tcp::socket& sock, beast::flat_buffer& buffer,
                                           connection_slot& slot) {
  for (;;) {
    if (buffer.size() == 0) {
      // Between requests. The shutdown may cancel the connection while it waits here.
      const std::optional<std::chrono::milliseconds> patience = enter_idle(slot);
      if (!patience) co_return;
      bool idle_too_long = false;
      try {
        auto readable = sock.async_wait(tcp::socket::wait_read, baton::use_task);
        co_await baton::wait_for(std::move(readable), *patience);
      } catch (const baton::timeout_error&) {
        idle_too_long = true;
      }
      if (!leave_idle(slot) || idle_too_long) co_return;
    }
    // relaxed: see stop(). A request read from here on, once the shutdown began, is late.
    const bool late = stopping_flag_.load(std::memory_order_relaxed);

    http::request_parser<http::string_body> parser;
    parser.header_limit(opts_.header_limit);
    parser.body_limit(opts_.body_limit);
    boost::system::error_code ec;
    bool too_slow = false;
    std::optional<framing_error> refused;
    try {
      refused = co_await baton::wait_for(read_request(sock, buffer, parser), opts_.read_timeout);
    } catch (const boost::system::system_error& e) {
      ec = e.code();
    } catch (const baton::timeout_error&) {
      too_slow = true;
    }

    if (refused) {
      auto rejecting = baton::spawn(reject(sock, refused->status, std::move(refused->why)));
      co_await rejecting;
      co_return;
    }
    if (too_slow || ec) {
      http::status status = http::status::bad_request;
      std::string why = ec.message();
      if (too_slow) {
        status = http::status::request_timeout;
        why = "the request did not arrive in time";
      } else if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
                 ec.category() != http::make_error_code(http::error::need_more).category()) {
        co_return;  // the client hung up, or the network failed: nobody to answer
      } else if (ec == http::error::header_limit) {
        status = http::status::request_header_fields_too_large;
      } else if (ec == http::error::body_limit) {
        status = http::status::payload_too_large;
      }
      auto rejecting = baton::spawn(reject(sock, status, std::move(why)));
      co_await rejecting;
      co_return;
    }

    // relaxed: a counter; the request's data travels with the task, not through it.
    const bool room = in_flight_.fetch_add(1, std::memory_order_relaxed) < opts_.max_in_flight;
    const admission how = late   ? admission::shutting_down
                          : room ? admission::admitted
                                 : admission::over_capacity;
    auto handling = baton::spawn(serve_request(sock, parser.release(), how));
    const bool keep_alive = co_await handling;
    if (!keep_alive) {
      co_await linger_close(sock);  // the response said Connection: close
      co_return;
    }
  }
}

// ---- a request ----------------------------------------------------------------------------

baton::task<bool> server::serve_request(tcp::socket& sock, request req, admission how) {
  const auto started = std::chrono::steady_clock::now();
  // serve_connection() counted this request in; it counts out when this task ends.
  struct in_flight_guard {
    std::atomic<std::size_t>& n;
    ~in_flight_guard() { n.fetch_sub(1, std::memory_order_relaxed); }
  } guard{in_flight_};

  // The request's context: this task's own copy of the connection's, so nothing set here
  // reaches the connection or its next request.
  const auto id_field = req.find("X-Request-Id");
  (void)current_request_id.set(id_field != req.end() && valid_request_id(view(id_field->value()))
                                   ? std::string(view(id_field->value()))
                                   : new_request_id());
  const auto user_field = req.find("X-User");
  const bool bad_user = user_field != req.end() && !valid_user(view(user_field->value()));
  (void)current_user.set(user_field != req.end() && !bad_user
                             ? std::string(view(user_field->value()))
                             : std::string("anonymous"));
  std::chrono::milliseconds budget = opts_.default_deadline;
  if (const auto f = req.find("X-Deadline-Ms"); f != req.end()) {
    if (const auto ms = to_number(view(f->value())); ms && *ms > 0) {
      budget = std::min(std::chrono::milliseconds(*ms), opts_.max_deadline);
    }
  }
  set_deadline(started + budget);
  std::vector<std::pair<std::string_view, std::string_view>> carrier;
  for (const auto& field : req)
    carrier.emplace_back(view(field.name_string()), view(field.value()));
  (void)baton::extract(carrier);  // traceparent, tracestate, baggage
  const std::optional<baton::trace_parent> received = baton::current_trace();
  (void)baton::start_span();  // this request's span: a child of the caller's, or a new trace

  // check_framing() accepted the target, so it parses.
  const target_parts target = parse_target(view(req.target())).value();
  response_lease lease;  // the response's memory, held until it is written
  const incoming in{req, target.path, target.url, received, lease};
  response res;
  std::optional<http::status> failure;
  std::string failure_text;
  if (how == admission::over_capacity) {
    failure = http::status::service_unavailable;
    failure_text = "over " + std::to_string(opts_.max_in_flight) + " requests in flight";
  } else if (how == admission::shutting_down) {
    failure = http::status::service_unavailable;
    failure_text = "shutting down";
  } else if (bad_user) {
    failure = http::status::bad_request;
    failure_text = "X-User: 1 to 64 characters of [A-Za-z0-9._@-]";
  } else {
    try {
      auto handling = route(*this, in);
      res = co_await baton::wait_for(std::move(handling), budget);
    } catch (const baton::timeout_error&) {
      failure = http::status::gateway_timeout;
      failure_text = "deadline of " + std::to_string(budget.count()) + " ms exceeded";
    } catch (const baton::cancelled_error&) {
      throw;  // the shutdown's grace period is over: no response
    } catch (const std::exception& e) {
      failure = http::status::internal_server_error;
      failure_text = e.what();
    }
  }
  if (failure) {
    spdlog::warn("{}", baton::log_value(failure_text));
    res = error_response(*failure, failure_text);
  }
  if (res.result() == http::status::service_unavailable) {
    res.set(http::field::retry_after, std::to_string(opts_.retry_after.count()));
  }

  res.version(req.version());
  res.set(http::field::server, "baton-http-service");
  res.set("X-Request-Id", current_request_id.get());
  if (const auto span = baton::current_trace()) res.set("traceparent", span->to_string());
  // relaxed: see stop(); a response that misses the flag keeps the connection open, and its
  // client's next request is answered 503 (late).
  res.keep_alive(req.keep_alive() && how != admission::shutting_down &&
                 !stopping_flag_.load(std::memory_order_relaxed));
  res.prepare_payload();

  // The access line goes out before the response, so that it can be on disk before the client
  // learns the answer; its time is until the response was ready.
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  // The target is the client's bytes: log_value quotes and escapes it when it needs that.
  spdlog::info("{} {} -> {} ({} us)", view(req.method_string()),
               baton::log_value(view(req.target())), res.result_int(), us);
  // A request that may have changed something (a note stored) is acknowledged only once its
  // lines are in the file: a killed process loses none of them. Other lines wait for the
  // flusher, at most log_options::flush_interval (docs/http-service.md, "Log durability").
  const http::verb method = req.method();
  if (method != http::verb::get && method != http::verb::head && method != http::verb::options) {
    flush_log();
  }

  std::optional<std::string> not_sent;
  try {
    auto writing = http::async_write(sock, res, baton::use_task);
    co_await baton::wait_for(std::move(writing), opts_.write_timeout);
  } catch (const baton::cancelled_error&) {
    throw;
  } catch (const std::exception& e) {
    not_sent = e.what();  // the client went away, or read too slowly
  }
  if (not_sent) {
    spdlog::info("the response was not delivered: {}", baton::log_value(*not_sent));
    co_return false;
  }
  served_.fetch_add(1, std::memory_order_relaxed);
  co_return res.keep_alive();
}

baton::task<void> server::reject(tcp::socket& sock, http::status status, std::string why) {
  // A request of its own (this task's context), so that its log line has an id too.
  (void)current_request_id.set(new_request_id());
  (void)current_user.set("anonymous");
  spdlog::warn("malformed request: {} -> {}", why, static_cast<unsigned>(status));
  response res = error_response(status, why);
  res.set(http::field::server, "baton-http-service");
  res.set("X-Request-Id", current_request_id.get());
  res.keep_alive(false);
  res.prepare_payload();
  bool written = true;
  try {
    auto writing = http::async_write(sock, res, baton::use_task);
    co_await baton::wait_for(std::move(writing), opts_.write_timeout);
  } catch (const baton::cancelled_error&) {
    throw;
  } catch (const std::exception&) {
    written = false;
  }
  if (!written) co_return;
  co_await linger_close(sock);
}

}  // namespace http_service
