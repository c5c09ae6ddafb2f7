// SPDX-License-Identifier: BSL-1.0
// The server: an accept loop on the serving task, one spawned task per call, a completion
// queue drained by its own thread (detail/completion.hpp), shutdown on a thread of its own.
#include <baton/grpc/server.hpp>

#include <baton/errors.hpp>
#include <baton/event.hpp>
#include <baton/executor.hpp>
#include <baton/grpc/call_context.hpp>
#include <baton/spawn.hpp>
#include <baton/task_handle.hpp>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>

namespace baton::grpc {

namespace detail {

struct registered_method {
  call_kind kind;
  method_body body;
};

// Who owns what:
//   server ──▶ server_state ──▶ ::grpc::Server, its completion queue and the queue's thread
//   serve() (the accept loop) ──new──▶ accepted_call ◀── the call's task (run_call)
//   an accepted_call is deleted by whichever of {its task ends, gRPC says the call is done}
//   comes second; serve() returns once every accepted_call is gone.
struct server_state {
  server_options options;
  std::unordered_map<std::string, registered_method> methods;
  ::grpc::AsyncGenericService service;
  std::unique_ptr<::grpc::ServerCompletionQueue> cq;
  std::unique_ptr<::grpc::Server> server;
  std::vector<int> ports;
  std::optional<cq_thread> poller;
  std::optional<boost::asio::io_context::executor_type> loop_executor;  // set by start()

  std::mutex shutdown_mutex;
  bool shutdown_requested = false;  // under shutdown_mutex
  std::thread shutdown_thread;
  // The queue may shut down only once no call can start an operation on it any more: serve()
  // (or the destructor of a server that never served) says so through calls_gone.
  std::promise<void> calls_gone;
  bool calls_gone_said = false;
  event finished;  // set by the shutdown thread once gRPC and the queue's thread are done

  // A Dekker pair: the last call to go and the accept loop's end each store one and load the
  // other, so at least one of them sees both done and sets `drained` (seq_cst for that).
  std::atomic<std::size_t> in_flight{0};
  std::atomic<bool> accepting{true};
  event drained;

  /// Starts the shutdown thread once: Shutdown() blocks until every call is gone, which needs
  /// the loop to run, so it never runs on a loop thread.
  void request_shutdown(std::chrono::steady_clock::duration grace) {
    std::lock_guard lock(shutdown_mutex);
    if (shutdown_requested || !server) return;
    shutdown_requested = true;
    auto deadline = std::chrono::system_clock::now() +
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(grace);
    shutdown_thread = std::thread([this, deadline, gone = calls_gone.get_future()] {
      server->Shutdown(deadline);
      gone.wait();
      cq->Shutdown();
      poller.reset();  // joins the queue's thread once the queue is empty
      finished.set();
    });
  }

  void say_calls_gone() {
    if (!calls_gone_said) calls_gone.set_value();
    calls_gone_said = true;
  }

  void call_gone() {
    if (in_flight.fetch_sub(1) == 1 && !accepting.load()) drained.set();
  }
};

class accepted_call final : public server_call {
 public:
  explicit accepted_call(server_state& s) : server_(s), done_(*this) {}

  /// AsyncNotifyWhenDone before RequestCall, as gRPC requires.
  void watch() { context_.AsyncNotifyWhenDone(static_cast<completion*>(&done_)); }
  void* request_tag_target() { return &stream_; }

  ::grpc::GenericServerContext& context() { return context_; }
  ::grpc::GenericServerAsyncReaderWriter& stream() { return stream_; }
  void set_kind(call_kind k) { kind_ = k; }
  server_state& owner() { return server_; }

  /// Keeps the handler's handle so that gRPC's "done" can cancel it; cancels at once if the
  /// call was already cancelled.
  void adopt(task_handle<void> h) {
    std::lock_guard lock(mutex_);
    if (done_seen_) {
      if (context_.IsCancelled()) h.cancel();
      return;
    }
    handler_ = std::move(h);
  }

  /// The handler's task has finished with the call.
  void handler_finished() { release(); }

 private:
  /// gRPC's "the call is done" tag: on the queue's thread, so the work goes to the loop.
  struct done_completion final : completion {
    explicit done_completion(accepted_call& c) : call(c) {}
    void complete(bool) noexcept override {
      accepted_call* c = &call;
      boost::asio::post(*c->server_.loop_executor, [c] { c->on_done(); });
    }
    accepted_call& call;
  };

  void on_done() {
    {
      std::lock_guard lock(mutex_);
      done_seen_ = true;
      // The client cancelled, the deadline passed, or shutdown's grace ran out.
      if (handler_ && context_.IsCancelled()) handler_->cancel();
      handler_.reset();
    }
    release();
  }

  void release() {
    // acq_rel: the side that deletes must see everything the other side did to the call.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      server_state& s = server_;
      delete this;
      s.call_gone();
    }
  }

  server_state& server_;
  done_completion done_;
  std::mutex mutex_;
  std::optional<task_handle<void>> handler_;  // under mutex_
  bool done_seen_ = false;                    // under mutex_
  std::atomic<int> refs_{2};                  // the handler's task and gRPC's "done"
};

namespace {

/// One call, in its own context (spawned: a copy of serve()'s, filled here).
task<> run_call(accepted_call& c) {
  std::optional<::grpc::ByteBuffer> reply;
  ::grpc::Status status;
  try {
    (void)extract(c.context());
    auto& methods = c.owner().methods;
    auto it = methods.find(c.context().method());
    if (it == methods.end()) {
      throw status_error(::grpc::StatusCode::UNIMPLEMENTED,
                         "baton: no handler for " + c.context().method());
    }
    c.set_kind(it->second.kind);
    reply = co_await it->second.body(c);
  } catch (const status_error& e) {
    status = e.status();
  } catch (const cancelled_error&) {
    status = ::grpc::Status(::grpc::StatusCode::CANCELLED, "baton: the handler was cancelled");
  } catch (const std::exception& e) {
    status = ::grpc::Status(::grpc::StatusCode::UNKNOWN, e.what());
  }
  if (!status.ok()) reply.reset();
  try {
    co_await grpc_op(
        [&](void* tag) {
          if (reply) {
            c.stream().WriteAndFinish(*reply, ::grpc::WriteOptions(), status, tag);
          } else {
            c.stream().Finish(status, tag);
          }
        },
        [&c] { c.context().TryCancel(); });
  } catch (const cancelled_error&) {
    // Cancelled while finishing: the call is over either way.
  }
  c.handler_finished();
}

}  // namespace

server_call::server_call() : stream_(&context_) {}
server_call::~server_call() = default;

task<std::optional<::grpc::ByteBuffer>> server_call::read() {
  if (reads_closed_) throw runtime_error("baton: grpc: read() after the call's one request");
  if (reading_) throw runtime_error("baton: grpc: a read is already pending on this call");
  reading_ = true;
  ::grpc::ByteBuffer bytes;
  bool ok = false;
  try {
    ok = co_await grpc_op([&](void* tag) { stream_.Read(&bytes, tag); },
                          [this] { context_.TryCancel(); });
  } catch (...) {
    reading_ = false;
    throw;
  }
  reading_ = false;
  if (!ok) co_return std::nullopt;
  co_return bytes;
}

task<> server_call::write(const ::grpc::ByteBuffer& message) {
  if (kind_ == call_kind::client_streaming || kind_ == call_kind::unary) {
    throw runtime_error(
        "baton: grpc: write() in a call whose one response is the handler's return value");
  }
  if (writing_) throw runtime_error("baton: grpc: a write is already pending on this call");
  writing_ = true;
  bool ok = false;
  try {
    ok = co_await grpc_op([&](void* tag) { stream_.Write(message, tag); },
                          [this] { context_.TryCancel(); });
  } catch (...) {
    writing_ = false;
    throw;
  }
  writing_ = false;
  if (!ok) {
    throw status_error(::grpc::StatusCode::CANCELLED,
                       "baton: grpc: the call is gone (cancelled, or past its deadline)");
  }
}

}  // namespace detail

server::server(server_options options) : state_(std::make_unique<detail::server_state>()) {
  state_->options = std::move(options);
}

server::~server() {
  if (!state_->server) return;
  state_->request_shutdown({});
  state_->say_calls_gone();
  if (state_->shutdown_thread.joinable()) state_->shutdown_thread.join();
}

void server::add(std::string method, detail::call_kind kind, detail::method_body body) {
  if (state_->server) {
    throw runtime_error("baton: grpc server: add a method (" + method + ") before start()");
  }
  if (!state_->methods.emplace(method, detail::registered_method{kind, std::move(body)}).second) {
    throw runtime_error("baton: grpc server: " + method + " is registered twice");
  }
}

void server::start() {
  auto& s = *state_;
  if (s.server) throw runtime_error("baton: grpc server: start() called twice");
  if (s.options.addresses.empty())
    throw runtime_error("baton: grpc server: no address to listen on");
  s.loop_executor = current_executor();
  ::grpc::ServerBuilder builder;
  auto credentials =
      s.options.credentials ? s.options.credentials : ::grpc::InsecureServerCredentials();
  s.ports.assign(s.options.addresses.size(), 0);
  for (std::size_t i = 0; i < s.options.addresses.size(); ++i) {
    builder.AddListeningPort(s.options.addresses[i], credentials, &s.ports[i]);
  }
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE,
                             static_cast<int>(s.options.max_metadata_bytes));
  builder.RegisterAsyncGenericService(&s.service);
  s.cq = builder.AddCompletionQueue();
  s.server = builder.BuildAndStart();
  if (!s.server) {
    s.cq.reset();
    throw runtime_error("baton: grpc server: cannot start (is an address taken or malformed?)");
  }
  for (std::size_t i = 0; i < s.ports.size(); ++i) {
    if (s.ports[i] == 0) {
      s.server->Shutdown();
      s.cq->Shutdown();
      void* tag = nullptr;
      bool ok = false;
      while (s.cq->Next(&tag, &ok)) {
      }
      s.server.reset();
      throw runtime_error("baton: grpc server: cannot listen on " + s.options.addresses[i]);
    }
  }
  s.poller.emplace(*s.cq);
}

int server::port(std::size_t i) const {
  if (i >= state_->ports.size()) throw runtime_error("baton: grpc server: port() before start()");
  return state_->ports[i];
}

task<> server::serve() {
  auto& s = *state_;
  if (!s.server) start();
  bool cancelled = false;
  for (;;) {
    auto call = std::make_unique<detail::accepted_call>(s);
    call->watch();
    bool ok = false;
    try {
      co_await detail::grpc_op(
          [&](void* tag) {
            s.service.RequestCall(&call->context(), &call->stream(), s.cq.get(), s.cq.get(), tag);
          },
          [&s] { s.request_shutdown({}); }, &ok);
    } catch (const cancelled_error&) {
      cancelled = true;  // the cancel started the shutdown; a call matched meanwhile still runs
    }
    if (!ok) break;  // shutting down; gRPC never reports an unmatched call as done
    s.in_flight.fetch_add(1);
    auto* c = call.release();
    c->adopt(spawn(detail::run_call(*c), {.name = "grpc " + c->context().method()}));
    if (cancelled) break;
  }
  s.request_shutdown({});  // a no-op unless serve() was cancelled before it could accept
  s.accepting.store(false);
  if (s.in_flight.load() == 0) s.drained.set();
  // Every call must be gone, and gRPC's threads too, before serve() returns (handlers and the
  // queue's thread refer to this server). The shutdown's grace period bounds the wait, so a
  // cancel that arrives meanwhile is held until then.
  for (event* e : {&s.drained, &s.finished}) {
    if (e == &s.finished) s.say_calls_gone();
    for (;;) {
      try {
        co_await e->wait();
        break;
      } catch (const cancelled_error&) {
        cancelled = true;
      }
    }
  }
  s.shutdown_thread.join();  // it has set `finished`: only its return is left
  if (cancelled) throw cancelled_error();
}

void server::shutdown(std::chrono::steady_clock::duration grace) {
  state_->request_shutdown(grace);
}

}  // namespace baton::grpc
