// SPDX-License-Identifier: BSL-1.0
// channel: gRPC calls awaited from any baton task, carrying the caller's context.
#pragma once

// Contract:
//   channel(ch, options)  wraps a gRPC channel (e.g. ::grpc::CreateChannel(target,
//                 credentials)); its completion queue gets one thread that only hands results
//                 back to loops, at its first call. options.default_timeout (positive, else
//                 runtime_error) is the budget of every call that sets no timeout of its own. A
//                 call made from a loop whose thread polls a queue (a server's, with poll_on_loop:
//                 server.hpp; or a loop_poller's: loop_poller.hpp) goes through that queue instead,
//                 so a channel used only from such loops never starts its thread.
//   co_await ch.call<Response>(method, request, opts)   a unary call; returns the response.
//                 The request is serialized by call() itself (status_error INTERNAL if it
//                 cannot be), so it need not outlive the returned task and is never copied.
//   co_await ch.open<Request, Response>(method, opts)    a streaming call of any kind, as a
//                 client_stream: write() requests, writes_done(), read() replies to nullopt,
//                 finish() for the status.
//   Every call starts with baton::grpc::inject(): the caller's trace (its current span is the
//   callee's parent), tracestate, baggage, and the deadline: the earlier of the caller's
//   current_deadline() and now + opts.timeout (the channel's default_timeout when the call sets
//   none). opts.metadata adds fields of its own, then options.before_call(call) runs in the
//   caller's context (a tenant var written as a field on every call; what it throws is the
//   caller's, and no call is made). opts.received, when set, gets the server's initial and
//   trailing metadata of a unary call once it ends, OK or not (a client_stream's are in its
//   context(): the initial after the first read(), the trailing after finish()); what it
//   holds is bounded by the channel's cap on received metadata (gRPC's
//   GRPC_ARG_MAX_METADATA_SIZE: over it the call fails with RESOURCE_EXHAUSTED).
//   options.after_call(method, status, ran), when set, runs in the caller's context as each
//   call ends: a unary call's before call() returns or throws (CANCELLED for a cancelled
//   caller), a stream's in the finish() that learns its status (not for a stream destroyed
//   unfinished). What it throws is dropped.
//   Context:      the caller's own, unchanged, when each co_await returns (on any loop thread).
//   Exceptions:   status_error when the status is not OK (DEADLINE_EXCEEDED once the deadline
//                 passed, UNAVAILABLE when nobody answers, RESOURCE_EXHAUSTED for a reply over
//                 the channel's receive bound, the server's own codes); write()
//                 throws the call's status_error when the call has ended; cancelled_error when
//                 the calling task is cancelled; baton::runtime_error on misuse (two reads or
//                 two writes pending at once, use after finish()). A client_stream opened
//                 on a loop that polls a queue of its own rides that queue for its whole life;
//                 once the queue is shut down (the polling server's serve() returned, the
//                 loop_poller was destroyed) the call is cancelled at its next operation:
//                 read() gives nullopt, write(), writes_done() and finish() throw
//                 status_error(UNAVAILABLE). Such a stream is used from its loop only
//                 (baton::runtime_error from another thread).
//   Cancellation: cancelling the calling task cancels the RPC itself (the server sees
//                 CANCELLED and its handler is cancelled); a client_stream destroyed before
//                 finish() cancels its call.
//   Thread-safety: a channel may be used from any number of tasks and loops at once; a
//                 client_stream by one task at a time, except that one read and one write may
//                 be pending together. The channel must outlive its calls.
//
// Example:
//   baton::grpc::channel users(::grpc::CreateChannel("localhost:50051",
//                                                    ::grpc::InsecureChannelCredentials()));
//   baton::grpc::call_options opts;  // named, not braced in the co_await (docs/notes/004)
//   opts.timeout = std::chrono::milliseconds(200);
//   auto reply = co_await users.call<lookup_reply>("/dir.Users/Lookup", request, opts);

#include <baton/errors.hpp>
#include <baton/grpc/call_context.hpp>
#include <baton/grpc/detail/completion.hpp>
#include <baton/grpc/detail/message_bytes.hpp>
#include <baton/grpc/status_error.hpp>
#include <baton/task.hpp>

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/impl/codegen/proto_utils.h>  // SerializationTraits for protobuf messages

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace baton::grpc {

/// What a server sent with its answer besides the message: its initial and trailing metadata,
/// each in the order it arrived.
struct response_metadata {
  std::vector<std::pair<std::string, std::string>> initial;
  std::vector<std::pair<std::string, std::string>> trailing;

  /// The first value of `key`, in the initial metadata, else the trailing; nullopt when absent.
  std::optional<std::string_view> find(std::string_view key) const;
};

struct call_options {
  std::optional<std::chrono::steady_clock::duration> timeout = {};  // the call's own budget
  // Checked as a server's response fields are (detail::check_metadata_field(): lowercase
  // a-z 0-9 - _ . keys, printable values unless -bin, no grpc-*): baton::runtime_error, no call.
  std::vector<std::pair<std::string, std::string>> metadata = {};
  // A unary call fills it with the server's metadata once the call has ended, whatever its
  // status (before call() returns or throws status_error; left as it was when the caller is
  // cancelled). Must outlive the call. A client_stream's is in its context().
  response_metadata* received = nullptr;
};

struct channel_options {
  // The budget of a call that sets no timeout of its own: a server that never answers then
  // fails the call with DEADLINE_EXCEEDED instead of holding its caller for ever (the caller's
  // current_deadline() still wins when earlier). Absent: such a call has the context's
  // deadline alone, or none.
  std::optional<std::chrono::steady_clock::duration> default_timeout = {};
  // Run before each call starts, in the caller's context, after baton has written the trace,
  // baggage, deadline and the call's own metadata: what every call on the channel carries from
  // the context besides those (a tenant var as a field, per-call credentials). What it throws
  // is the caller's, and the call is not made.
  std::function<void(::grpc::ClientContext& call)> before_call = {};
  // Run as each call ends, in the caller's context, with the full method name, the status the
  // call ended with and the time since it started: a client-side access log or latency metric
  // that carries the caller's ids. A unary call's before call() returns or throws (CANCELLED
  // when the caller was cancelled); a stream's in the finish() that learns its status (a stream
  // destroyed unfinished is not reported). Must not block the loop; what it throws is dropped.
  std::function<void(const std::string& method, const ::grpc::Status& status,
                     std::chrono::steady_clock::duration ran)>
      after_call = {};
};

namespace detail {
/// Sets up an outgoing call's ClientContext: inject() with the call's timeout (else the
/// channel's default_timeout), the call's extra metadata (checked first: gRPC would abort the
/// process on a field it refuses), then the channel's before_call.
void prepare(::grpc::ClientContext& call, const call_options& opts, const channel_options& channel);
/// Copies the server's metadata an ended call received into `out`.
void take_response_metadata(const ::grpc::ClientContext& call, response_metadata& out);

/// When a call started, for the channel's after_call: a clock read only when a hook is set.
inline std::chrono::steady_clock::time_point call_started(const channel_options& channel) {
  return channel.after_call ? std::chrono::steady_clock::now()
                            : std::chrono::steady_clock::time_point();
}
/// Runs the channel's after_call, if any, for a call that ended with `status`; drops what it
/// throws.
void report_call_end(const channel_options& channel, const std::string& method,
                     const ::grpc::Status& status, std::chrono::steady_clock::time_point started);
/// The status an after_call hook sees for a caller cancelled mid-call.
::grpc::Status caller_cancelled();

/// A unary call's request, serialized when the call was made. gRPC serializes what it sends
/// through SerializationTraits, whose ByteBuffer version copies the buffer; this type's version
/// (below) hands gRPC the bytes themselves, once: gRPC serializes a request once per call.
class sent_bytes {
 public:
  explicit sent_bytes(message_bytes bytes) noexcept : bytes_(std::move(bytes)) {}
  sent_bytes(sent_bytes&&) noexcept = default;
  sent_bytes& operator=(sent_bytes&&) noexcept = default;
  sent_bytes(const sent_bytes&) = delete;
  sent_bytes& operator=(const sent_bytes&) = delete;
  ~sent_bytes() = default;

  /// Gives the bytes to `out` (gRPC's send buffer); this holds gRPC's old, empty buffer after.
  void hand_to(::grpc::ByteBuffer& out) const noexcept { out.Swap(&bytes_.buffer()); }

 private:
  // Mutable: gRPC passes what it sends as const, and taking the bytes once is this type's job.
  mutable message_bytes bytes_;
};
}  // namespace detail

/// One streaming call. Move-only; destroying it before finish() cancels the call.
template <class Request, class Response>
class client_stream {
 public:
  client_stream(client_stream&&) noexcept = default;
  client_stream& operator=(client_stream&&) noexcept = default;
  ~client_stream() = default;

  /// Sends one request; the call's status_error when it has ended (finish() is done for you).
  [[nodiscard]] task<> write(const Request& r) {
    call_state& s = state();
    if (queue_gone(s)) {
      co_await finish();  // throws the status the call ended with
      throw status_error(s.method, ::grpc::Status(::grpc::StatusCode::INTERNAL,
                                                  "the call ended with OK before this write"));
    }
    if (s.writing.exchange(true)) {
      throw runtime_error("baton: grpc client_stream: a write is already pending");
    }
    bool ok = false;
    try {
      ok = co_await detail::grpc_op([&](void* tag) { s.stream->Write(r, tag); },
                                    [&s] { s.context.TryCancel(); });
    } catch (...) {
      s.writing = false;
      throw;
    }
    s.writing = false;
    if (!ok) {
      co_await finish();  // throws the status that ended the call
      throw status_error(s.method, ::grpc::Status(::grpc::StatusCode::INTERNAL,
                                                  "the call ended with OK while writing"));
    }
  }
  /// Tells the server no more requests come.
  [[nodiscard]] task<> writes_done() {
    call_state& s = state();
    if (queue_gone(s)) {
      co_await finish();  // throws the status the call ended with
      co_return;
    }
    co_await detail::grpc_op([&](void* tag) { s.stream->WritesDone(tag); },
                             [&s] { s.context.TryCancel(); });
  }
  /// The next reply; nullopt when the server has finished sending (then call finish()).
  [[nodiscard]] task<std::optional<Response>> read() {
    call_state& s = state();
    if (queue_gone(s)) co_return std::nullopt;  // finish() then throws why
    if (s.reading.exchange(true)) {
      throw runtime_error("baton: grpc client_stream: a read is already pending");
    }
    std::optional<Response> r(std::in_place);
    bool ok = false;
    try {
      ok = co_await detail::grpc_op([&](void* tag) { s.stream->Read(&*r, tag); },
                                    [&s] { s.context.TryCancel(); });
    } catch (...) {
      s.reading = false;
      throw;
    }
    s.reading = false;
    if (!ok) r.reset();
    co_return r;
  }
  /// Waits for the call's status: returns on OK, throws status_error otherwise.
  [[nodiscard]] task<> finish() {
    call_state& s = state();
    if (!s.finished && !queue_gone(s)) {
      co_await detail::grpc_op([&](void* tag) { s.stream->Finish(&s.status, tag); },
                               [&s] { s.context.TryCancel(); });
      s.finished = true;
    }
    if (s.channel != nullptr) {  // the first finish() to learn the status reports it
      detail::report_call_end(*std::exchange(s.channel, nullptr), s.method, s.status, s.started);
    }
    if (!s.status.ok()) throw status_error(s.method, s.status);
  }
  /// The gRPC call: server metadata once the first read returned, ...
  ::grpc::ClientContext& context() { return state().context; }

 private:
  friend class channel;
  struct call_state {
    ::grpc::ClientContext context;
    std::string method;
    std::unique_ptr<::grpc::ClientAsyncReaderWriter<Request, Response>> stream;
    ::grpc::Status status;
    bool finished = false;
    std::atomic<bool> reading{false};
    std::atomic<bool> writing{false};
    // Set when the call rides a loop's own queue (a polling server's or a loop_poller's),
    // which may shut down while the call lives: checked before each operation.
    std::shared_ptr<detail::queue_lease> lease;
    // The channel's options while its after_call has yet to hear of this call (the channel
    // outlives its calls); null without a hook, and once reported.
    const channel_options* channel = nullptr;
    std::chrono::steady_clock::time_point started;
  };
  explicit client_stream(std::unique_ptr<call_state> s) noexcept : state_(std::move(s)) {}
  /// True once the loop's queue the call rides has shut down: no operation may start on it any
  /// more, so the call is cancelled and ends with UNAVAILABLE (finished, with that status).
  /// baton::runtime_error when a call on a loop's queue is used from another thread.
  static bool queue_gone(call_state& s) {
    if (!s.lease) return false;
    if (s.lease->open.load(std::memory_order_relaxed)) {
      if (s.lease->thread != std::this_thread::get_id()) {
        throw runtime_error(
            "baton: grpc client_stream: a call opened on a loop that polls its gRPC queue is "
            "used from another thread");
      }
      return false;
    }
    if (!s.finished) {
      s.context.TryCancel();
      s.status = ::grpc::Status(::grpc::StatusCode::UNAVAILABLE,
                                "baton: the loop's gRPC queue this call rode has shut down (a "
                                "polling server's serve() returned, or its loop_poller is gone)");
      s.finished = true;
    }
    return true;
  }
  call_state& state() const {
    if (!state_) throw runtime_error("baton: grpc client_stream used after being moved from");
    return *state_;
  }

  std::unique_ptr<call_state> state_;
};

class channel {
 public:
  explicit channel(std::shared_ptr<::grpc::Channel> ch, channel_options options = {});
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;
  /// Shuts the completion queue down and joins its thread, if started (no call may be pending).
  ~channel();

  // No default arguments: g++ 12 may destroy a default argument's temporary twice inside a
  // co_await expression (docs/notes/004-gcc12-coroutine-temporaries.md).
  // Not coroutines: the request is serialized here, before the task exists, so the task owns
  // its bytes and the caller's request need not outlive it (and is never copied).
  template <class Response, class Request>
  [[nodiscard]] task<Response> call(std::string method, const Request& request) {
    return call<Response>(std::move(method), request, call_options{});
  }
  template <class Response, class Request>
  [[nodiscard]] task<Response> call(std::string method, const Request& request, call_options opts) {
    return unary<Response>(std::move(method),
                           detail::sent_bytes(detail::serialize_message(request)), std::move(opts));
  }

  template <class Request, class Response>
  [[nodiscard]] task<client_stream<Request, Response>> open(std::string method) {
    return open<Request, Response>(std::move(method), call_options{});
  }
  template <class Request, class Response>
  [[nodiscard]] task<client_stream<Request, Response>> open(std::string method, call_options opts) {
    using stream_type = client_stream<Request, Response>;
    auto s = std::make_unique<typename stream_type::call_state>();
    s->method = std::move(method);
    if (options_.after_call) s->channel = &options_;
    s->started = detail::call_started(options_);
    detail::prepare(s->context, opts, options_);
    ::grpc::TemplatedGenericStub<Request, Response> stub(channel_);
    auto& st = *s;
    bool ok = co_await detail::grpc_op(
        [&](void* tag) {
          st.stream = stub.PrepareCall(&st.context, st.method, &stream_queue(st.lease));
          st.stream->StartCall(tag);
        },
        [&st] { st.context.TryCancel(); });
    stream_type result(std::move(s));
    if (!ok) co_await result.finish();  // throws why the call could not start
    co_return result;
  }

  const std::shared_ptr<::grpc::Channel>& grpc_channel() const noexcept { return channel_; }

 private:
  template <class Response>
  task<Response> unary(std::string method, detail::sent_bytes request, call_options opts) {
    ::grpc::ClientContext context;
    detail::prepare(context, opts, options_);
    ::grpc::TemplatedGenericStub<detail::sent_bytes, Response> stub(channel_);
    std::unique_ptr<::grpc::ClientAsyncResponseReader<Response>> rpc;
    Response response;
    ::grpc::Status status;
    const auto started = detail::call_started(options_);
    try {
      co_await detail::grpc_op(
          [&](void* tag) {
            rpc = stub.PrepareUnaryCall(&context, method, request, &queue());
            rpc->StartCall();
            rpc->Finish(&response, &status, tag);
          },
          [&context] { context.TryCancel(); });
    } catch (const cancelled_error&) {
      detail::report_call_end(options_, method, detail::caller_cancelled(), started);
      throw;
    }
    if (opts.received != nullptr) detail::take_response_metadata(context, *opts.received);
    detail::report_call_end(options_, method, status, started);
    if (!status.ok()) throw status_error(method, status);
    co_return response;
  }

  /// The queue a call started now goes to: the running loop's loop_queue when it takes calls,
  /// else cq_, whose routing thread this starts the first time.
  ::grpc::CompletionQueue& queue();
  /// queue() for a streaming call, with the loop_queue's lease when it is a loop's.
  ::grpc::CompletionQueue& stream_queue(std::shared_ptr<detail::queue_lease>& lease);

  std::shared_ptr<::grpc::Channel> channel_;
  channel_options options_;
  ::grpc::CompletionQueue cq_;
  std::once_flag poller_started_;
  std::optional<detail::cq_thread> poller_;  // cq_'s routing thread, from the first call on cq_
};

}  // namespace baton::grpc

template <>
class grpc::SerializationTraits<baton::grpc::detail::sent_bytes> {
 public:
  static ::grpc::Status Serialize(const baton::grpc::detail::sent_bytes& request,
                                  ::grpc::ByteBuffer* out, bool* own_buffer) {
    request.hand_to(*out);
    *own_buffer = true;
    return ::grpc::Status::OK;
  }
};
