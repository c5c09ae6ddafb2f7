// SPDX-License-Identifier: BSL-1.0
// server: a gRPC server whose handlers are baton tasks, each in a context filled from its call.
#pragma once

// Contract:
//   add_unary / add_server_streaming / add_client_streaming / add_bidi register a handler for a
//   full method name (`/package.Service/Method`) before start(); Request and Response are
//   protobuf messages. A handler is a callable returning a task (the server keeps it, so a
//   coroutine lambda's captures stay valid while the server lives):
//     unary             task<Response>(Request), or task<Response>(Request, const
//                       ::grpc::ServerContext&) to see the call (peer(), client_metadata(),
//                       auth_context()), or task<Response>(Request, unary_call&) to see it
//                       and add response metadata; references valid until the task ends
//     server streaming  task<>(Request, server_stream<Request, Response>&)    write() each reply
//     client streaming  task<Response>(server_stream<Request, Response>&)    read() to nullopt
//     bidi              task<>(server_stream<Request, Response>&)            read() and write()
//   A registration that the method's compiled .proto contradicts (no such method in the
//   service, another RPC kind, other message types; a name that is not /package.Service/Method)
//   throws runtime_error naming the difference; a service no compiled .proto describes is not
//   checked. An optional method_options, last, sets how the method's calls are bounded (a
//   method whose calls stay open, exempt from call_time_limit once its request is in).
//   start() builds and starts the gRPC server on the options' addresses (runtime_error when
//   one cannot be bound, when max_metadata_bytes or max_message_bytes is over INT_MAX, when
//   call_time_limit is negative, or connection_idle_limit, keepalive_time or keepalive_timeout
//   negative or over INT_MAX ms);
//   port() tells which port an address with port 0 got.
//   Bounds: what one call holds in baton's hands is its metadata (at most max_metadata_bytes,
//   larger calls are refused) and one message at a time (at most max_message_bytes, a larger
//   one ends the call with RESOURCE_EXHAUSTED; twice that while a compressed one inflates): a
//   streaming handler reads one message per read(). Compressed messages are refused
//   (UNIMPLEMENTED) unless accept_compressed_messages is set; then baton inflates each one
//   under the same bound (a stream's read() that meets one larger throws
//   status_error(RESOURCE_EXHAUSTED) and the call ends with it).
//   What gRPC buffers beyond that is not bounded per call: for a message still arriving,
//   gRPC's flow control lets the client send all the length the message's prefix declares (up
//   to 4 GiB), max_message_bytes applying once it is in, and a message in small frames costs
//   gRPC a 32-byte list entry per frame besides its bytes (one-byte frames: about 50 bytes a
//   byte) until it is whole. max_memory_bytes bounds all of the server's connections together
//   (over it, gRPC resets calls until it is under), counting the frames but not that list.
//   max_calls bounds how many calls are handled at once (the rest are refused with
//   RESOURCE_EXHAUSTED), call_time_limit how long any of them holds that (DEADLINE_EXCEEDED;
//   for a method registered with time_limited = false, only until its request is in).
//   serve() (starting first if needed) accepts calls until shutdown() or until the serving task
//   is cancelled, then returns once every call has finished. Each call runs as its own task
//   spawned by serve() on serve()'s loop, in a copy of serve()'s context holding what
//   baton::grpc::extract() sets (trace, baggage, a span of its own, the call's deadline).
//   on_call(hook): before each call's handler, whatever its method (registered or not),
//   `co_await hook(method, call)` runs in the call's context, after baton has filled it: what
//   it sets there (the caller's tenant, an authenticated user, from client_metadata()) the
//   handler sees, and no other call. It may await (to_thread, a call to an auth service); an
//   exception it throws ends the call as the handler's would, without running the handler (a
//   status_error(UNAUTHENTICATED) refuses it). A hook taking call_view& instead of the
//   ServerContext may also add response metadata, as a handler does: fields for every reply
//   (a request id echoed back), or trailing ones beside the status its refusal throws. Before
//   start(), once, in either form (runtime_error otherwise, and for an empty hook).
//   on_call_end(hook): as each call ends, hook(method, status, ran) runs on the loop in the
//   call's context (what on_call and the handler set, its trace: an access log line or a
//   metric that carries the call's ids), with the status about to go out and the time since
//   the task started, before the status is sent. It sees every call the server ends: replies,
//   handler errors, UNIMPLEMENTED, on_call's refusals, cancelled handlers, and the calls whose
//   handler never started: those refused before any task (RESOURCE_EXHAUSTED for max_calls
//   and max_metadata_bytes) and those cancelled before their task's first step (CANCELLED).
//   For these the status goes out first (refusing stays cheap: no task) and the hook runs after
//   it, on the loop, with `ran` zero, in a copy of serve()'s context filled from the call (the
//   trace and baggage; not for metadata over max_metadata_bytes, which baton does not read).
//   It must not block the loop; what it throws is dropped (the call's status stands). Before
//   start(), once (runtime_error otherwise, and for an empty hook).
//   Ending a call: a handler that returns ends it with OK (and the response); one that throws
//   status_error ends it with that status; cancelled_error gives CANCELLED; any other exception
//   UNKNOWN with its what() (one that is no std::exception, UNKNOWN saying so). An unregistered
//   method gets UNIMPLEMENTED, a request that does not parse INVALID_ARGUMENT.
//   Cancellation: the handler task is cancelled (and what it awaits) when the client cancels,
//   when the call's deadline passes, and by shutdown() once the grace period is over.
//   shutdown(grace): stop accepting calls; calls in flight get `grace` to finish, then are
//   cancelled. Callable from any thread, any number of times (the first one counts).
//   poll_on_loop: serve()'s loop thread (a loop of one thread) is gRPC's poller for the
//   server, and calls that loop's tasks make on any baton::grpc::channel go through the
//   server's queue too (until shutdown starts; calls made before serve() first runs use the
//   channel's own thread, so spawn serve() and let it start first). While serve() runs, that
//   loop waits in gRPC, not in Asio: baton's timers (sleep, wait_for), to_thread, loop_handle
//   and tasks woken from other threads are as prompt as ever, but Asio sockets, signal_sets and
//   plain Asio timers on the loop may be seen up to 5 ms late, so a loop serving those keeps
//   the default (a routing thread). A loop of several threads, or one already polling another
//   server's queue, keeps the routing thread too (polled_by_loop() says which). serve() then
//   also waits for the loop's calls still pending on that queue; a client stream the loop
//   opened and keeps open past serve()'s return ends with UNAVAILABLE at its next operation
//   (channel.hpp), so a loop that streams to other services while it serves keeps those
//   streams within serve()'s life or uses another loop.
//   The server must outlive serve(); destroying a started server whose serve() has not
//   returned throws nothing but shuts down and waits for the gRPC threads (do not do it on the
//   serving loop's thread while calls are in flight).
//   server_stream::read() -> std::optional<Request>: the next message, nullopt once the client
//   is done writing (gRPC drops a message the client's end of stream cuts short: the stream
//   then ends after the last whole one); status_error(CANCELLED) when the call ended before the
//   client finished sending (a lost connection, a reset, a message over max_message_bytes),
//   DEADLINE_EXCEEDED when call_time_limit ended it, RESOURCE_EXHAUSTED (ending the call) for
//   a compressed message that inflates past max_message_bytes. write(r) sends one message;
//   status_error(CANCELLED) when the call is gone
//   (DEADLINE_EXCEEDED when call_time_limit ended it).
//   Response metadata: add_initial_metadata(key, value) and add_trailing_metadata(key, value)
//   on a server_stream or a unary_call add a field to what the call sends before its first
//   message and with its status (whatever status the handler ends with). Keys are lowercase
//   a-z 0-9 - _ .; a key ending in -bin takes any bytes, any other printable ASCII only;
//   grpc-*, content-type, te, user-agent and HTTP/1's connection fields are gRPC's and
//   HTTP/2's. baton::runtime_error for a field that breaks those rules (gRPC would abort the
//   process on it), for initial metadata once the first write() started, and past
//   max_metadata_bytes for everything the handler added (same measure as the incoming cap).
//   One read and one write may be pending at a time (baton::runtime_error otherwise, and for
//   write() in a client-streaming call, read() in a server-streaming one).
//   Context:      handlers run in their call's context; read()/write() in the awaiting task's.
//   Exceptions:   as above.
//   Thread-safety: add_*() and start() before serving, from one thread; shutdown() from any.
//
// Example:
//   baton::grpc::server srv({.addresses = {"127.0.0.1:50051"}});
//   srv.add_unary<echo_request, echo_reply>("/demo.Echo/Say",
//       [](echo_request req) -> baton::task<echo_reply> {
//         echo_reply r;
//         r.set_text(req.text());
//         co_return r;
//       });
//   co_await srv.serve();

#include <baton/grpc/detail/server_call.hpp>
#include <baton/grpc/status_error.hpp>
#include <baton/task.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace grpc {
class ServerCredentials;
}

namespace baton::grpc {

struct server_options {
  std::vector<std::string> addresses = {};                      // "host:port"; 0 picks a port
  std::shared_ptr<::grpc::ServerCredentials> credentials = {};  // null: insecure
  // Per call, each field counted as name + value + 32 bytes (HTTP/2's measure); a call with
  // more is refused with RESOURCE_EXHAUSTED before its request is read or a task started.
  std::size_t max_metadata_bytes = 16 * 1024;
  // Per message received (gRPC's own default): a larger one ends its call with
  // RESOURCE_EXHAUSTED before any handler sees it. At most INT_MAX (gRPC's limit is an int).
  std::size_t max_message_bytes = 4 * 1024 * 1024;
  // Whether a call's messages may arrive compressed (gzip, deflate). Off, a call whose client
  // compresses ends with UNIMPLEMENTED before any of it is read. On, baton inflates each message
  // itself and stops one byte past max_message_bytes (RESOURCE_EXHAUSTED), so a compressed
  // message holds at most max_message_bytes on the wire (gRPC's check) plus that much inflated.
  // (gRPC 1.51's own inflation, which baton turns off, inflates a message whole before checking
  // its size: 4 MiB of gzip can become 4 GiB.) The cost is inflating, on the thread that takes
  // the queue's events for a call's one request, on the handler's loop for a stream's reads.
  bool accept_compressed_messages = false;
  // The serving loop's thread polls the server's completion queue itself, instead of a routing
  // thread handing it the events: fewer thread hops per call (docs/grpc.md, "The loop as
  // gRPC's poller", says what the loop may then wait on). A loop of several threads, or one
  // that polls another server's queue, keeps the routing thread (polled_by_loop() says which).
  bool poll_on_loop = false;
  // Calls handled at once, from the call's arrival until its handler's task ends: a call over
  // it is refused with RESOURCE_EXHAUSTED before its request is read or a task started (load
  // shedding: the client may retry later). 0: no limit.
  std::size_t max_calls = 0;
  // The longest a call may run, whatever deadline its client sent (or none): the call's
  // deadline is the earlier of the two, in the handler's context too (deadline_var()), and a
  // call still running when it passes ends with DEADLINE_EXCEEDED, its handler cancelled. What
  // bounds a client that opens a call and never finishes sending. Zero: the client's alone.
  std::chrono::steady_clock::duration call_time_limit = {};
  // What the server's connections may hold in gRPC's buffers altogether (gRPC's ResourceQuota):
  // over it, gRPC resets calls until it is under again. What bounds a message still arriving:
  // gRPC checks max_message_bytes only once the whole message is in, and lets a client send
  // all the length its message's prefix declares (up to 4 GiB). gRPC's list of a message's
  // frames is not counted (32 bytes a frame: at 16 MiB, a message sent in one-byte frames
  // peaked at 68 MiB before its call was reset). Zero: no bound (gRPC's own).
  std::size_t max_memory_bytes = 0;
  // A connection with no call for this long is closed (gRPC's max_connection_idle; a client
  // reconnects for its next call): what bounds clients that connect and never call. Zero:
  // connections stay open (gRPC's own). At most INT_MAX milliseconds.
  std::chrono::steady_clock::duration connection_idle_limit = {};
  // How often the server pings a connection (gRPC's keepalive), and how long it waits for the
  // answer before it closes the connection and cancels its calls: what finds a client that
  // vanished without closing (a host gone, a NAT entry dropped), whose calls would otherwise
  // run until their deadline, or for ever. Zero: gRPC's own (2 hours, 20 seconds). Each at
  // most INT_MAX milliseconds.
  std::chrono::steady_clock::duration keepalive_time = {};
  std::chrono::steady_clock::duration keepalive_timeout = {};
};

/// How one registered method's calls are handled (the optional last argument of add_*()).
struct method_options {
  // Whether server_options::call_time_limit bounds a call of this method for its whole life.
  // False for a call meant to stay open (a health Watch, a subscription): the limit then bounds
  // only the call's arrival, up to its one request for a unary or server-streaming method (a
  // client that never sends it is still ended), and the handler runs under the client's
  // deadline alone. A client-streaming or bidi handler then bounds its own reads (wait_for).
  // Such calls still count against max_calls.
  bool time_limited = true;
};

/// What each handler's and each on_call hook's view of its call offers, whatever the call's
/// kind: the gRPC call, and fields of the response's metadata (the contract has the rules).
class call_view {
 public:
  call_view(const call_view&) = delete;
  call_view& operator=(const call_view&) = delete;

  /// The gRPC call: peer(), client_metadata(), auth_context().
  const ::grpc::ServerContext& context() const noexcept { return call_.context(); }
  /// A field sent before the call's first message: with a stream's first write()
  /// (runtime_error after it), or with a unary call's reply or status.
  void add_initial_metadata(std::string_view key, std::string_view value) {
    call_.add_response_field(false, key, value);
  }
  /// A field sent with the call's status, whatever the status is.
  void add_trailing_metadata(std::string_view key, std::string_view value) {
    call_.add_response_field(true, key, value);
  }

 protected:
  explicit call_view(detail::server_call& call) noexcept : call_(call) {}
  ~call_view() = default;

  detail::server_call& call_;
};

/// What server::on_call() runs before each call's handler: the full method name and the call,
/// as gRPC's ServerContext (call_hook) or as a call_view that may also add response metadata
/// (call_view_hook).
using call_hook =
    std::function<task<>(const std::string& method, const ::grpc::ServerContext& call)>;
using call_view_hook = std::function<task<>(const std::string& method, call_view& call)>;

/// What server::on_call_end() runs as each call ends: the full method name, the status the
/// call ends with, and how long its task ran (from before the on_call hook; zero for a call
/// whose handler never started).
using call_end_hook = std::function<void(const std::string& method, const ::grpc::Status& status,
                                         std::chrono::steady_clock::duration ran)>;

/// The call as a streaming handler sees it.
template <class Request, class Response>
class server_stream : public call_view {
 public:
  explicit server_stream(detail::server_call& call) noexcept : call_view(call) {}

  [[nodiscard]] task<std::optional<Request>> read() {
    auto bytes = co_await call_.read();
    if (!bytes) co_return std::nullopt;
    co_return detail::parse_message<Request>(*bytes);
  }
  [[nodiscard]] task<> write(const Response& r) {
    co_await call_.write(detail::serialize_message(r).buffer());
  }
};

/// The call as a unary handler of the third form sees it: context() and the response's
/// metadata, which goes out with the reply or with the status_error the handler ends with.
class unary_call : public call_view {
 public:
  explicit unary_call(detail::server_call& call) noexcept : call_view(call) {}
};

class server {
 public:
  explicit server(server_options options);
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  ~server();

  template <class Request, class Response, class F>
  void add_unary(std::string method, F handler, method_options opts = {}) {
    add(std::move(method), detail::call_kind::unary,
        unary_body<Request, Response>(std::move(handler)),
        detail::proto_types_of<Request, Response>(), opts);
  }
  template <class Request, class Response, class F>
  void add_server_streaming(std::string method, F handler, method_options opts = {}) {
    add(std::move(method), detail::call_kind::server_streaming,
        server_streaming_body<Request, Response>(std::move(handler)),
        detail::proto_types_of<Request, Response>(), opts);
  }
  template <class Request, class Response, class F>
  void add_client_streaming(std::string method, F handler, method_options opts = {}) {
    add(
        std::move(method), detail::call_kind::client_streaming,
        [h = std::move(handler)](
            detail::server_call& c) -> task<std::optional<detail::message_bytes>> {
          server_stream<Request, Response> s(c);
          co_return detail::serialize_message(co_await h(s));
        },
        detail::proto_types_of<Request, Response>(), opts);
  }
  template <class Request, class Response, class F>
  void add_bidi(std::string method, F handler, method_options opts = {}) {
    add(
        std::move(method), detail::call_kind::bidi,
        [h = std::move(handler)](
            detail::server_call& c) -> task<std::optional<detail::message_bytes>> {
          server_stream<Request, Response> s(c);
          co_await h(s);
          co_return std::nullopt;
        },
        detail::proto_types_of<Request, Response>(), opts);
  }

  /// Runs `hook` in each call's context before its handler (see the contract). Before start(),
  /// once (either form).
  void on_call(call_hook hook);
  void on_call(call_view_hook hook);
  /// Runs `hook` in each call's context as the call ends (see the contract). Before start(),
  /// once.
  void on_call_end(call_end_hook hook);
  /// Builds and starts the gRPC server. Call from a task on the loop that will serve.
  void start();
  /// The port the i-th address got (after start()).
  int port(std::size_t i = 0) const;
  [[nodiscard]] task<> serve();
  /// True while serve() runs with its loop's thread as the queue's poller (poll_on_loop).
  bool polled_by_loop() const noexcept;
  void shutdown(std::chrono::steady_clock::duration grace = {});

 private:
  friend class health_service;
  friend struct detail::server_seam;  // tests' view of a call's steps (runtime/grpc/)

  template <class Request, class Response, class F>
  static detail::method_body unary_body(F handler) {
    constexpr bool takes_call = std::is_invocable_v<const F&, Request, unary_call&>;
    constexpr bool sees_call = std::is_invocable_v<const F&, Request, const ::grpc::ServerContext&>;
    static_assert(takes_call || sees_call || std::is_invocable_v<const F&, Request>,
                  "baton::grpc::server::add_unary: the handler must be callable as "
                  "h(Request), h(Request, const ::grpc::ServerContext&) or "
                  "h(Request, baton::grpc::unary_call&), returning a task");
    return [h = std::move(handler)](
               detail::server_call& c) -> task<std::optional<detail::message_bytes>> {
      auto req = detail::take_request_message<Request>(c);
      if constexpr (takes_call) {
        unary_call call(c);
        co_return detail::serialize_message(co_await h(std::move(req), call));
      } else if constexpr (sees_call) {
        co_return detail::serialize_message(co_await h(std::move(req), c.context()));
      } else {
        co_return detail::serialize_message(co_await h(std::move(req)));
      }
    };
  }
  template <class Request, class Response, class F>
  static detail::method_body server_streaming_body(F handler) {
    return [h = std::move(handler)](
               detail::server_call& c) -> task<std::optional<detail::message_bytes>> {
      server_stream<Request, Response> s(c);
      auto req = detail::take_request_message<Request>(c);
      co_await h(std::move(req), s);
      co_return std::nullopt;
    };
  }

  /// Registers `body` under `method`, after checking it against the method's compiled .proto
  /// when one is linked in (detail::check_method()).
  void add(std::string method, detail::call_kind kind, detail::method_body body,
           detail::proto_types types, method_options opts);
  /// Runs `hook` once, on the thread that starts the shutdown, as it starts (before the grace
  /// period); register before start().
  void at_shutdown(std::function<void()> hook);

  std::unique_ptr<detail::server_state> state_;
};

}  // namespace baton::grpc
