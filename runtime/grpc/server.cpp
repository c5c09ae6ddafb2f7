// SPDX-License-Identifier: BSL-1.0
// The server: calls accepted on the completion queue's thread, one spawned task per call on the
// serving loop, shutdown on a thread of its own (docs/design/grpc.md).
#include <baton/grpc/server.hpp>

#include <baton/context.hpp>
#include <baton/errors.hpp>
#include <baton/event.hpp>
#include <baton/executor.hpp>
#include <baton/grpc/call_context.hpp>
#include <baton/loop_handle.hpp>
#include <baton/spawn.hpp>
#include <baton/task_handle.hpp>

#include "inflate.hpp"
#include "server_seam.hpp"

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpcpp/alarm.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/server_builder.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace baton::grpc {

namespace detail {

namespace {

/// Calls requested from gRPC at once: a burst of new calls need not wait for the queue's
/// thread to ask for the next one.
constexpr int accept_depth = 16;

/// The call's metadata as its handler sees it, each field counted as its name and value plus
/// 32 bytes, HTTP/2's measure of a header list (RFC 9113 §6.5.2), which gRPC's own cap uses.
std::size_t metadata_bytes(const ::grpc::ServerContextBase& context) {
  std::size_t n = 0;
  for (const auto& [key, value] : context.client_metadata()) n += key.size() + value.size() + 32;
  return n;
}

constexpr const char* inflated_over_limit =
    "baton: a compressed message inflates past max_message_bytes";

/// What adopt_message() made of a message core received.
struct adopted {
  // The message; no buffer at all for a compressed one that does not inflate, so that the
  // handler's parse of it fails (INVALID_ARGUMENT) rather than reading an empty message.
  received_message message;
  bool over_limit = false;  // a compressed message that inflates past max_message_bytes
};

/// A message core received, taken over: an uncompressed one as it is. A compressed one
/// arrives as gRPC received it, its own inflation being off (inflate.hpp says why), and is
/// inflated here, to at most `limit` bytes, and freed.
adopted adopt_message(grpc_byte_buffer* received, std::size_t limit) {
  adopted out;
  if (received->type == GRPC_BB_RAW && received->data.raw.compression != GRPC_COMPRESS_NONE) {
    const std::unique_ptr<grpc_byte_buffer, void (*)(grpc_byte_buffer*)> compressed(
        received, grpc_byte_buffer_destroy);
    out.over_limit = inflate_message(*received, limit, out.message) == inflated::over_limit;
    return out;
  }
  out.message = received_message(received);
  return out;
}

}  // namespace

struct registered_method {
  call_kind kind;
  method_body body;
  baton::detail::task_name_ref task_name;  // "grpc <method>", made once: each task shares it
  bool time_limited;                       // method_options::time_limited
};

class accepted_call;

/// A call's place in its server's time-limit list (time_limits, server_state::limits).
struct limited_call {
  limited_call* prev = nullptr;
  limited_call* next = nullptr;
  deadline_point ends;
  grpc_call* call = nullptr;            // cancelled with DEADLINE_EXCEEDED if unanswered at `ends`
  std::atomic<bool>* passed = nullptr;  // set just before that cancel (server_call's flag)
  // The handler's task has ended and its Finish started (any thread): the limit no longer
  // cancels the call, whose answer is on its way; it stays linked until that Finish completes.
  std::atomic<bool> answered{false};
  bool linked = false;
};

/// server_options::call_time_limit for every call of a server with one gRPC alarm. Every call
/// gets the same limit, so arrival order is also the order the limits pass: the calls are a
/// FIFO list, and the alarm is set for the oldest one's. When it fires it cancels the calls
/// whose limit has passed (unless the handler has answered) and is set again for the new
/// oldest. A call leaves the list when its final Finish completes (a call of a method exempt from
/// the limit, method_options::time_limited, once its request is in). Linking, unlinking and the
/// alarm all run where the queue's events are taken (the routing thread, or the polling loop's
/// thread), so the list's lock is not contended between threads. A call finishing early costs a
/// lock and an unlink, where an alarm per call would cost about 1 µs of CPU (docs/benchmarks.md).
/// The alarm's pending event counts as a call in server_state::in_flight, so the queue is not shut
/// down under it: once the server stops accepting, an empty list cancels it. (A serving server
/// leaves it set when the list empties: one call at a time would otherwise set and cancel an alarm
/// per call.)
class time_limits {
 public:
  time_limits(std::atomic<std::size_t>& in_flight, std::function<void()> gone)
      : in_flight_(in_flight), gone_(std::move(gone)), event_(*this) {}

  /// On the queue's thread, as the call arrives.
  void link(limited_call& c, ::grpc::CompletionQueue& cq) {
    std::lock_guard lock(mutex_);
    c.prev = newest_;
    c.next = nullptr;
    (newest_ ? newest_->next : oldest_) = &c;
    newest_ = &c;
    c.linked = true;
    if (!alarm_pending_) arm(cq);
  }

  /// On the queue's thread, as the call's final Finish completes (or an exempt call's request
  /// is read). Nothing when the alarm has taken it already.
  void unlink(limited_call& c) {
    std::lock_guard lock(mutex_);
    if (!c.linked) return;
    remove(c);
    if (stopping_) cancel_when_empty();
  }

  /// The server stops accepting calls (any thread): no alarm outlives the calls left.
  void stop() {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    cancel_when_empty();
  }

 private:
  struct alarm_event final : completion {
    explicit alarm_event(time_limits& l) : limits(l) {}
    void complete(bool) noexcept override { limits.on_alarm(); }
    time_limits& limits;
  };

  /// Under mutex_: its event comes at once, and sets no new alarm.
  void cancel_when_empty() {
    if (oldest_ == nullptr && alarm_pending_) alarm_->Cancel();
  }

  void remove(limited_call& c) noexcept {
    (c.prev ? c.prev->next : oldest_) = c.next;
    (c.next ? c.next->prev : newest_) = c.prev;
    c.linked = false;
  }

  /// Under mutex_, with oldest_ set and no alarm pending.
  void arm(::grpc::CompletionQueue& cq) {
    cq_ = &cq;
    alarm_pending_ = true;
    in_flight_.fetch_add(1);  // the alarm's event, given back by on_alarm()
    alarm_.emplace();         // an alarm is set once: a fresh one each time
    alarm_->Set(cq_, monotonic_deadline(oldest_->ends), event_.tag());
  }

  /// On the queue's thread: the alarm fired or was cancelled.
  void on_alarm() noexcept {
    {
      std::lock_guard lock(mutex_);
      alarm_pending_ = false;
      const auto now = std::chrono::steady_clock::now();
      while (oldest_ != nullptr && oldest_->ends <= now) {
        // A linked call's final Finish has not completed, so the call is not deleted under
        // this. gRPC then reports it done and cancelled, which cancels its handler like any
        // deadline. acquire: pairs with accepted_call::finish().
        if (!oldest_->answered.load(std::memory_order_acquire)) {
          // release: a read or write that fails from this cancel sees the flag (server_call).
          oldest_->passed->store(true, std::memory_order_release);
          grpc_call_cancel_with_status(oldest_->call, GRPC_STATUS_DEADLINE_EXCEEDED,
                                       "baton: the call ran past the server's call_time_limit",
                                       nullptr);
        }
        remove(*oldest_);
      }
      if (oldest_ != nullptr) arm(*cq_);
    }
    gone_();
  }

  std::atomic<std::size_t>& in_flight_;
  std::function<void()> gone_;  // server_state::call_gone()
  alarm_event event_;
  std::mutex mutex_;
  limited_call* oldest_ = nullptr;  // under mutex_, from here down
  limited_call* newest_ = nullptr;
  bool alarm_pending_ = false;  // set, and its event not yet taken
  bool stopping_ = false;       // the server accepts no more calls
  std::optional<::grpc::Alarm> alarm_;
  ::grpc::CompletionQueue* cq_ = nullptr;
};

// Who owns what:
//   server ──▶ server_state ──▶ ::grpc::Server, its completion queue and the queue's thread
//   server_state::accept() ──new──▶ accepted_call (one per requested call)
//   An accepted_call is deleted by the last of its references: before a match, the request;
//   after it, gRPC's "done" and the call's own path (request read, task, final Finish), and
//   while the task is being started, the posted start. Those events arrive on the queue's
//   thread and need no loop; only starting the task does (and may release the last reference,
//   on the loop).
//   serve() returns once every accepted_call is gone and gRPC's threads have stopped.
struct server_state {
  server_options options;
  std::unordered_map<std::string, registered_method> methods;
  ::grpc::AsyncGenericService service;
  std::unique_ptr<::grpc::ServerCompletionQueue> cq;
  std::unique_ptr<::grpc::Server> server;
  std::vector<int> ports;
  std::optional<cq_thread> poller;
  std::optional<loop_queue> on_loop;  // poll_on_loop and serve()'s loop took it (loop thread)
  std::atomic<bool> polled{false};    // on_loop is attached: polled_by_loop(), from any thread
  event cq_drained;                   // poll_on_loop: the queue's last events are taken
  std::shared_ptr<baton::detail::loop_gate> loop_gate;  // the serving loop's, set by start()
  std::optional<context> base;  // serve()'s context: each call runs in a copy of it

  std::mutex shutdown_mutex;
  bool shutdown_requested = false;  // under shutdown_mutex
  // What server::at_shutdown() registered (the health service's drain): run as shutdown
  // starts, before the grace period. Written before start() only.
  std::vector<std::function<void()>> shutdown_hooks;
  // What server::on_call() registered, in its call_view form (a ServerContext hook is wrapped):
  // run in each call's context before its handler. Written before start() only.
  call_view_hook before_handler;
  // What server::on_call_end() registered: run in each call's context as the call ends.
  // Written before start() only.
  call_end_hook after_handler;
  // What server_seam::observe_call_steps() registered (tests only): told of each call's steps.
  // Written before start() only.
  call_step_observer observe_step;
  // Under shutdown_mutex: the thread can set `finished` before request_shutdown() has stored
  // it here, so whoever joins it takes it under the mutex (join_shutdown_thread()).
  std::thread shutdown_thread;
  // The queue may shut down only once no call can start an operation on it any more: serve()
  // (or the destructor of a server that never served) says so through calls_gone.
  std::promise<void> calls_gone;
  bool calls_gone_said = false;
  event finished;  // set by the shutdown thread once gRPC and the queue's thread are done

  // A Dekker pair: the last call to go and request_shutdown each store one and load the other,
  // so at least one of them sees both done and sets `drained` (seq_cst for that). in_flight
  // counts the accepted_calls and, while its event is pending, the time limits' alarm.
  std::atomic<std::size_t> in_flight{0};
  std::atomic<bool> accepting{true};
  event drained;

  time_limits limits{in_flight, [this] { call_gone(); }};

  // Calls counted against options.max_calls (only when it is set): taken on the queue's thread
  // as a call arrives, given back as its handler's task ends.
  std::atomic<std::size_t> handling{0};

  /// A place for one more call under max_calls; false when the server is full.
  bool take_call_slot() noexcept {
    // acq_rel: a slot given back before a reply went out is seen by a call that follows it.
    if (handling.fetch_add(1, std::memory_order_acq_rel) < options.max_calls) return true;
    handling.fetch_sub(1, std::memory_order_acq_rel);
    return false;
  }
  void give_back_call_slot() noexcept { handling.fetch_sub(1, std::memory_order_acq_rel); }

  void accept();

  /// Starts the shutdown thread once: Shutdown() blocks until every call is gone, which needs
  /// the loop to run, so it never runs on a loop thread.
  void request_shutdown(std::chrono::steady_clock::duration grace) {
    std::lock_guard lock(shutdown_mutex);
    if (shutdown_requested || !server) return;
    shutdown_requested = true;
    accepting.store(false);
    limits.stop();
    for (auto& hook : shutdown_hooks) hook();
    if (in_flight.load() == 0) drained.set();
    auto deadline = std::chrono::system_clock::now() +
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(grace);
    shutdown_thread = std::thread([this, deadline, gone = calls_gone.get_future()] {
      server->Shutdown(deadline);
      gone.wait();  // after it, on_loop is what serve() made it
      if (!on_loop) {
        cq->Shutdown();
        if (poller) {
          poller.reset();  // joins the queue's thread once the queue is empty
        } else {
          drain(*cq);  // never served: nothing but the shutdown itself
        }
      }
      // else serve() shuts the queue down on its loop, once the loop no longer polls it.
      finished.set();
    });
  }

  /// Joins the shutdown thread, if one was started and nobody joined it yet.
  void join_shutdown_thread() {
    std::thread t;
    {
      std::lock_guard lock(shutdown_mutex);
      t = std::move(shutdown_thread);
    }
    if (t.joinable()) t.join();
  }

  static void drain(::grpc::CompletionQueue& q) {
    void* tag = nullptr;
    bool ok = false;
    while (q.Next(&tag, &ok)) {
    }
  }

  /// Runs f on the serving loop: at once on the loop's own thread while it polls the queue,
  /// else posted there through the loop's gate, which also wakes a loop parked in another
  /// server's queue (a plain Asio post would wait for that loop's next timer).
  template <class F>
  void on_serving_loop(F f) {
    if (on_polling_thread()) {
      f();
    } else {
      // The loop is still running this server's serve(), which waits for every call: it takes
      // the job (`runs` is true), so the job need not look.
      (void)baton::detail::post_to_loop(loop_gate, [f = std::move(f)](bool) mutable { f(); });
    }
  }

  void say_calls_gone() {
    if (!calls_gone_said) calls_gone.set_value();
    calls_gone_said = true;
  }

  void call_gone() {
    if (in_flight.fetch_sub(1) == 1 && !accepting.load()) drained.set();
  }
};

/// run_call's parameter, which makes sure the call's Finish is started exactly once: by the
/// task's body, or, for a task cancelled before its first step (a cancelled task that never
/// ran does not run its body: the client cancelled before the task started), when its frame,
/// which holds this, is destroyed (end_without_task: on_call_end hears of it too). Without it
/// that call would never end and serve() would wait for it forever.
class finish_guard {
 public:
  explicit finish_guard(accepted_call& c) noexcept : call_(&c) {}
  finish_guard(finish_guard&& other) noexcept : call_(std::exchange(other.call_, nullptr)) {}
  finish_guard(const finish_guard&) = delete;
  finish_guard& operator=(const finish_guard&) = delete;
  finish_guard& operator=(finish_guard&&) = delete;
  ~finish_guard();

  accepted_call& call() const noexcept { return *call_; }
  /// The body's end of the call; the guard has nothing left to do after it.
  void finish(const std::optional<message_bytes>& reply, const ::grpc::Status& status);

 private:
  accepted_call* call_;
};

task<> run_call(finish_guard guard);

class accepted_call final : public server_call {
 public:
  explicit accepted_call(server_state& s)
      : server_(s), matched_(*this), request_read_tag_(*this), done_(*this), finished_(*this) {
    response_metadata_limit_ = s.options.max_metadata_bytes;
    message_limit_ = s.options.max_message_bytes;
  }

  /// Asks gRPC for the next call (AsyncNotifyWhenDone first, as gRPC requires).
  void request() {
    context_.AsyncNotifyWhenDone(done_.tag());
    server_.service.RequestCall(&context_, &stream_, server_.cq.get(), server_.cq.get(),
                                matched_.tag());
  }

  ::grpc::GenericServerContext& context() { return context_; }
  const registered_method* method() const { return method_; }
  server_state& owner() { return server_; }
  /// When server_options::call_time_limit ends this call; nullopt without a limit.
  std::optional<deadline_point> time_limit() const {
    return limit_.call != nullptr ? std::optional(limit_.ends) : std::nullopt;
  }

  /// On the loop: keeps the task's handle so that gRPC's "done" can cancel it; cancels at once
  /// if the call was cancelled already; drops it if the task has finished.
  void adopt(task_handle<void> h) {
    std::lock_guard lock(mutex_);
    if (task_finished_) return;
    if (done_seen_ && context_.IsCancelled()) h.cancel();
    handler_ = std::move(h);
  }

  /// The call's task ends with this: `status` (and `reply`) go out, and the final Finish
  /// releases the call's path on the queue's thread. The last thing the task does with it.
  void finish(const std::optional<message_bytes>& reply, const ::grpc::Status& status) {
    {
      std::lock_guard lock(mutex_);
      task_finished_ = true;
      handler_.reset();
    }
    if (holds_call_slot_) server_.give_back_call_slot();
    // release: the limit's alarm that sees this leaves the call's answer alone.
    if (limit_.call != nullptr) limit_.answered.store(true, std::memory_order_release);
    void* tag = finished_.tag();
    if (reply) {
      stream_.WriteAndFinish(reply->buffer(), ::grpc::WriteOptions(), status, tag);
    } else {
      stream_.Finish(status, tag);
    }
  }

  /// Ends a call whose task never ran its body: refused before any task (max_calls,
  /// max_metadata_bytes; on the queue's thread) or cancelled before the task's first step (on
  /// the loop, from finish_guard). The status goes to gRPC at once, so refusing stays cheap;
  /// then, if the server has an on_call_end hook, the hook runs on the serving loop in a copy
  /// of serve()'s context, filled from the call when `fill` (not for metadata over
  /// max_metadata_bytes, which baton does not read). The posted function holds a reference.
  void end_without_task(const ::grpc::Status& status, bool fill) {
    const bool report = static_cast<bool>(server_.after_handler);
    // relaxed: we hold a reference already; this one keeps the call until the hook has run.
    if (report) refs_.fetch_add(1, std::memory_order_relaxed);
    // Read before finish(): once the call is finished, its queue's thread unlinks the limit.
    const std::optional<deadline_point> limit = time_limit();
    finish(std::nullopt, status);
    if (!report) return;
    server_.on_serving_loop([this, status, fill, limit] {
      try {
        server_.base->copy().run([&] {
          if (fill) detail::fill(context_, limit);
          server_.after_handler(context_.method(), status,
                                std::chrono::steady_clock::duration::zero());
        });
      } catch (...) {
        // Dropped, as run_call drops what the hook throws (server.hpp's contract).
      }
      release();
    });
  }

 private:
  template <void (accepted_call::*On)(bool)>
  struct event_tag final : completion {
    explicit event_tag(accepted_call& c) : call(c) {}
    void complete(bool ok) noexcept override { (call.*On)(ok); }
    accepted_call& call;
  };

  // On the queue's thread, from here down.

  void on_matched(bool ok) {
    if (!ok) {  // shutting down; gRPC never reports an unmatched call as done
      release();
      return;
    }
    refs_.fetch_add(1, std::memory_order_relaxed);  // relaxed: we hold a reference already
    if (server_.accepting.load()) server_.accept();
    auto it = server_.methods.find(context_.method());
    if (it != server_.methods.end()) {
      method_ = &it->second;
      kind_ = method_->kind;
    }
    // gRPC's own cap on metadata holds per HTTP/2 frame, and only once the client has
    // acknowledged the server's settings: a header block spread over CONTINUATION frames, or
    // sent before that acknowledgement, passes it. So the cap is checked here too.
    if (metadata_bytes(context_) > server_.options.max_metadata_bytes) {
      end_without_task(::grpc::Status(::grpc::StatusCode::RESOURCE_EXHAUSTED,
                                      "baton: the call's metadata is over max_metadata_bytes"),
                       /*fill=*/false);
      return;
    }
    if (server_.options.max_calls != 0) {
      if (!server_.take_call_slot()) {
        end_without_task(::grpc::Status(::grpc::StatusCode::RESOURCE_EXHAUSTED,
                                        "baton: the server is handling max_calls calls already"),
                         /*fill=*/true);
        return;
      }
      holds_call_slot_ = true;
    }
    const bool reads_request =
        method_ && (kind_ == call_kind::unary || kind_ == call_kind::server_streaming);
    // A method exempt from the limit (method_options) is still held to it until its request is
    // in: on_request_read() takes the call out of the list.
    if (server_.options.call_time_limit > std::chrono::steady_clock::duration::zero() &&
        (!method_ || method_->time_limited || reads_request)) {
      limit_.ends = std::chrono::steady_clock::now() + server_.options.call_time_limit;
      limit_.call = context_.c_call();
      limit_.passed = &time_limit_passed_;
      server_.limits.link(limit_, *server_.cq);
    }
    if (reads_request) {
      // A core batch, as read() starts (a compressed request stays compressed until
      // adopt_message() inflates it under the limit); read_tag_ is free until the handler runs.
      start_core_read(&received_request_, request_read_tag_.tag());
    } else {
      start();
    }
  }

  void on_request_read(bool ok) {
    grpc_byte_buffer* received = std::exchange(received_request_, nullptr);
    bool over_limit = false;
    if (received != nullptr && ok) {
      adopted request = adopt_message(received, message_limit_);
      over_limit = request.over_limit;
      request_.emplace(std::move(request.message));
    } else {
      if (received != nullptr) grpc_byte_buffer_destroy(received);
      request_.reset();  // the client sent no request: the handler's read says so
    }
    if (limit_.call != nullptr && !method_->time_limited) {
      // The request is in: from here the call is not limited (time_limit() says so). Whether
      // the limit passed already, time_limit_passed_ still says.
      server_.limits.unlink(limit_);
      limit_.call = nullptr;
    }
    request_read_ = true;
    if (over_limit) {
      end_without_task(::grpc::Status(::grpc::StatusCode::RESOURCE_EXHAUSTED, inflated_over_limit),
                       /*fill=*/true);
      return;
    }
    start();
  }

  /// Spawns the call's task on the serving loop, in a copy of serve()'s context. The posted
  /// function holds a reference of its own until adopt() returns: on a loop with several
  /// threads the task can run, finish and see its final events released on the queue's thread
  /// before spawn() has returned here.
  void start() {
    refs_.fetch_add(1, std::memory_order_relaxed);  // relaxed: we hold a reference already
    server_.on_serving_loop([this] {
      adopt(baton::detail::spawn_copy(
          run_call(finish_guard(*this)), *server_.base,
          method_ ? method_->task_name
                  : baton::detail::make_task_name("grpc " + context_.method())));
      release();
    });
    if (server_.observe_step) server_.observe_step(call_step::start_posted);
  }

  void on_done(bool) {
    {
      std::lock_guard lock(mutex_);
      done_seen_ = true;
      // The client cancelled, the deadline passed, or shutdown's grace ran out.
      if (handler_ && context_.IsCancelled()) handler_->cancel();
    }
    if (server_.observe_step) server_.observe_step(call_step::done_seen);
    release();
  }

  void on_finished(bool) {
    if (limit_.call != nullptr) server_.limits.unlink(limit_);
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
  event_tag<&accepted_call::on_matched> matched_;
  event_tag<&accepted_call::on_request_read> request_read_tag_;
  event_tag<&accepted_call::on_done> done_;
  event_tag<&accepted_call::on_finished> finished_;
  const registered_method* method_ = nullptr;
  // Its place in server_state::limits under call_time_limit (call set: the call has a limit).
  limited_call limit_;
  grpc_byte_buffer* received_request_ = nullptr;  // what the request's core batch fills in
  bool holds_call_slot_ = false;  // counted against server_options::max_calls until finish()
  std::mutex mutex_;
  std::optional<task_handle<void>> handler_;  // under mutex_, while the task runs
  bool done_seen_ = false;                    // under mutex_
  bool task_finished_ = false;                // under mutex_
  // The request; then "done" and the call's path; and the posted start while it runs.
  std::atomic<int> refs_{1};
};

void server_state::accept() {
  in_flight.fetch_add(1);
  (new accepted_call(*this))->request();
}

finish_guard::~finish_guard() {
  if (call_ != nullptr) {
    call_->end_without_task(::grpc::Status(::grpc::StatusCode::CANCELLED,
                                           "baton: the call was cancelled before its handler "
                                           "started"),
                            /*fill=*/true);
  }
}

void finish_guard::finish(const std::optional<message_bytes>& reply, const ::grpc::Status& status) {
  std::exchange(call_, nullptr)->finish(reply, status);
}

/// The call_view an on_call hook gets (call_view's constructor is for the views baton makes).
class hook_view final : public call_view {
 public:
  explicit hook_view(server_call& c) noexcept : call_view(c) {}
};

/// One call, in its own context (spawned in a copy of serve()'s, filled here).
task<> run_call(finish_guard guard) {
  accepted_call& c = guard.call();
  const call_end_hook& end_hook = c.owner().after_handler;
  const auto started =
      end_hook ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
  std::optional<message_bytes> reply;
  ::grpc::Status status;
  try {
    detail::fill(c.context(), c.time_limit());
    if (const auto& hook = c.owner().before_handler) {
      hook_view view(c);
      co_await hook(c.context().method(), view);
    }
    if (!c.method()) {
      throw status_error(::grpc::StatusCode::UNIMPLEMENTED,
                         "baton: no handler for " + c.context().method());
    }
    reply = co_await c.method()->body(c);
  } catch (const status_error& e) {
    status = e.status();
  } catch (const cancelled_error&) {
    status = ::grpc::Status(::grpc::StatusCode::CANCELLED, "baton: the handler was cancelled");
  } catch (const std::exception& e) {
    status = ::grpc::Status(::grpc::StatusCode::UNKNOWN, e.what());
  } catch (...) {
    status = ::grpc::Status(::grpc::StatusCode::UNKNOWN,
                            "baton: the handler threw something that is not a std::exception");
  }
  if (!status.ok()) reply.reset();
  if (end_hook) {
    try {
      end_hook(c.context().method(), status, std::chrono::steady_clock::now() - started);
    } catch (...) {
      // Dropped: the call's own status stands (server.hpp's contract).
    }
  }
  guard.finish(reply, status);
}

server_call::server_call() : stream_(&context_) {}

status_error server_call::time_limit_error() {
  return status_error(::grpc::StatusCode::DEADLINE_EXCEEDED,
                      "baton: grpc: the call ran past the server's call_time_limit");
}
server_call::~server_call() = default;

void server_call::start_core_read(grpc_byte_buffer** into, void* awaiting) {
  read_tag_.awaiting = awaiting;
  ::grpc_op op{};
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = into;
  // One read at a time (reading_, or the request's read before the handler), so gRPC has no
  // reason to refuse it; if it did, no event would ever come for it (grpc++ asserts the same).
  const grpc_call_error e = grpc_call_start_batch(context_.c_call(), &op, 1, &read_tag_, nullptr);
  if (e != GRPC_CALL_OK) {
    std::fprintf(stderr, "baton: grpc: gRPC refused a read (grpc_call_error %d)\n",
                 static_cast<int>(e));
    std::abort();
  }
}

std::optional<received_message> server_call::take_request() {
  if (reads_closed_ || !request_read_) {
    throw runtime_error("baton: grpc: the call's one request is taken once, before any read()");
  }
  reads_closed_ = true;
  request_read_ = false;
  return std::move(request_);
}

task<std::optional<received_message>> server_call::read() {
  // A unary or server-streaming call's request was read before the handler: take_request().
  if (reads_closed_) throw runtime_error("baton: grpc: read() after the call's one request");
  if (reading_) throw runtime_error("baton: grpc: a read is already pending on this call");
  reading_ = true;
  grpc_byte_buffer* received = nullptr;
  bool ok = false;
  try {
    ok = co_await grpc_op([&](void* tag) { start_core_read(&received, tag); },
                          [this] { context_.TryCancel(); });
  } catch (...) {
    reading_ = false;
    if (received != nullptr) grpc_byte_buffer_destroy(received);
    throw;
  }
  reading_ = false;
  if (received != nullptr) {
    adopted message = adopt_message(received, message_limit_);
    if (message.over_limit) {
      grpc_call_cancel_with_status(context_.c_call(), GRPC_STATUS_RESOURCE_EXHAUSTED,
                                   inflated_over_limit, nullptr);
      throw status_error(::grpc::StatusCode::RESOURCE_EXHAUSTED, inflated_over_limit);
    }
    co_return std::move(message.message);
  }
  // No message: the client is done writing, or the call is gone. The server's time limit
  // sets its flag before it cancels; core fails the batch when gRPC ended the call itself (a
  // message over max_message_bytes) and flags a stream that ended without the client's close
  // (a reset, a lost connection). grpc++'s Read reports all of these like a clean end.
  if (time_limit_passed_.load(std::memory_order_acquire)) throw time_limit_error();
  if (!ok || grpc_call_failed_before_recv_message(context_.c_call()) != 0) {
    throw status_error(::grpc::StatusCode::CANCELLED,
                       "baton: grpc: the call ended before the client finished sending");
  }
  co_return std::nullopt;  // the client is done writing
}

void server_call::add_response_field(bool trailing, std::string_view key, std::string_view value) {
  check_metadata_field(key, value);
  if (!trailing && initial_metadata_sent_) {
    throw runtime_error(
        "baton: grpc: initial metadata added after the first write(), which "
        "sent it (key '" +
        printable_key(key) + "')");
  }
  const std::size_t bytes = key.size() + value.size() + 32;
  // response_metadata_bytes_ never exceeds the limit, so the subtraction cannot wrap.
  if (bytes > response_metadata_limit_ - response_metadata_bytes_) {
    throw runtime_error("baton: grpc: response metadata over max_metadata_bytes (key '" +
                        printable_key(key) + "')");
  }
  response_metadata_bytes_ += bytes;
  if (trailing) {
    context_.AddTrailingMetadata(std::string(key), std::string(value));
  } else {
    context_.AddInitialMetadata(std::string(key), std::string(value));
  }
}

task<> server_call::write(const ::grpc::ByteBuffer& message) {
  if (kind_ == call_kind::client_streaming || kind_ == call_kind::unary) {
    throw runtime_error(
        "baton: grpc: write() in a call whose one response is the handler's return value");
  }
  if (writing_) throw runtime_error("baton: grpc: a write is already pending on this call");
  writing_ = true;
  initial_metadata_sent_ = true;  // the first Write sends the initial metadata with it
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
    if (time_limit_passed_.load(std::memory_order_acquire)) throw time_limit_error();
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
  state_->join_shutdown_thread();
}

namespace {

const char* kind_name(detail::call_kind kind) {
  switch (kind) {
    case detail::call_kind::unary:
      return "unary (add_unary)";
    case detail::call_kind::server_streaming:
      return "server-streaming (add_server_streaming)";
    case detail::call_kind::client_streaming:
      return "client-streaming (add_client_streaming)";
    case detail::call_kind::bidi:
      return "bidirectional (add_bidi)";
  }
  return "unknown";
}

/// Refuses a registration that cannot serve its method: a name that is not
/// /package.Service/Method, and, when the service's .proto is compiled into the program (its
/// descriptors are in protobuf's generated pool), a method the service does not have, another
/// RPC kind, or other message types. A service no compiled .proto describes is not checked.
void check_method(const std::string& method, detail::call_kind kind, detail::proto_types types) {
  const auto slash = method.find('/', 1);
  if (method.size() < 4 || method[0] != '/' || slash == std::string::npos || slash == 1 ||
      slash + 1 == method.size() || method.find('/', slash + 1) != std::string::npos) {
    throw runtime_error("baton: grpc server: '" + method +
                        "' is not a full method name (/package.Service/Method)");
  }
  const std::string service_name = method.substr(1, slash - 1);
  const std::string method_name = method.substr(slash + 1);
  const auto* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service_name);
  if (service == nullptr) return;
  const auto* m = service->FindMethodByName(method_name);
  const std::string where = "baton: grpc server: " + method + ": ";
  if (m == nullptr) {
    std::string known;
    for (int i = 0; i < service->method_count(); ++i) {
      known += (i == 0 ? "" : ", ") + service->method(i)->name();
    }
    throw runtime_error(where + service_name + " has no method " + method_name +
                        " (it has: " + known + ")");
  }
  const detail::call_kind declared =
      m->client_streaming()
          ? (m->server_streaming() ? detail::call_kind::bidi : detail::call_kind::client_streaming)
          : (m->server_streaming() ? detail::call_kind::server_streaming
                                   : detail::call_kind::unary);
  if (declared != kind) {
    throw runtime_error(where + "the .proto declares it " + kind_name(declared) +
                        ", registered as " + kind_name(kind));
  }
  const auto check_type = [&](const google::protobuf::Descriptor* declared_type,
                              const google::protobuf::Descriptor* given, const char* role) {
    if (given != nullptr && given != declared_type) {
      throw runtime_error(where + "its " + role + " is " + declared_type->full_name() +
                          ", registered with " + given->full_name());
    }
  };
  check_type(m->input_type(), types.request, "request");
  check_type(m->output_type(), types.response, "response");
}

}  // namespace

void server::add(std::string method, detail::call_kind kind, detail::method_body body,
                 detail::proto_types types, method_options opts) {
  if (state_->server) {
    throw runtime_error("baton: grpc server: add a method (" + method + ") before start()");
  }
  check_method(method, kind, types);
  baton::detail::task_name_ref task_name = baton::detail::make_task_name("grpc " + method);
  if (!state_->methods
           .emplace(method, detail::registered_method{kind, std::move(body), std::move(task_name),
                                                      opts.time_limited})
           .second) {
    throw runtime_error("baton: grpc server: " + method + " is registered twice");
  }
}

void server::on_call(call_hook hook) {
  if (!hook) throw runtime_error("baton: grpc server: on_call() with an empty hook");
  on_call(call_view_hook([h = std::move(hook)](const std::string& method, call_view& call) {
    return h(method, call.context());
  }));
}

void server::on_call(call_view_hook hook) {
  if (state_->server) throw runtime_error("baton: grpc server: on_call() after start()");
  if (state_->before_handler) throw runtime_error("baton: grpc server: on_call() called twice");
  if (!hook) throw runtime_error("baton: grpc server: on_call() with an empty hook");
  state_->before_handler = std::move(hook);
}

void server::on_call_end(call_end_hook hook) {
  if (state_->server) throw runtime_error("baton: grpc server: on_call_end() after start()");
  if (state_->after_handler) {
    throw runtime_error("baton: grpc server: on_call_end() called twice");
  }
  if (!hook) throw runtime_error("baton: grpc server: on_call_end() with an empty hook");
  state_->after_handler = std::move(hook);
}

void detail::server_seam::observe_call_steps(server& s, detail::call_step_observer observer) {
  if (s.state_->server) {
    throw runtime_error("baton: grpc server: observe_call_steps() after start()");
  }
  s.state_->observe_step = std::move(observer);
}

void server::at_shutdown(std::function<void()> hook) {
  if (state_->server) {
    throw runtime_error("baton: grpc server: add a shutdown step before start()");
  }
  state_->shutdown_hooks.push_back(std::move(hook));
}

void server::start() {
  auto& s = *state_;
  if (s.server) throw runtime_error("baton: grpc server: start() called twice");
  if (s.options.addresses.empty()) {
    throw runtime_error("baton: grpc server: no address to listen on");
  }
  (void)current_executor();  // outside a loop: its runtime_error
  constexpr auto int_max = static_cast<std::size_t>(std::numeric_limits<int>::max());
  if (s.options.max_metadata_bytes > int_max || s.options.max_message_bytes > int_max) {
    throw runtime_error(
        "baton: grpc server: max_metadata_bytes and max_message_bytes must fit in an int");
  }
  if (s.options.call_time_limit < std::chrono::steady_clock::duration::zero()) {
    throw runtime_error("baton: grpc server: call_time_limit is negative");
  }
  // gRPC takes these as int milliseconds.
  const auto as_ms = [](std::chrono::steady_clock::duration d, const char* name) {
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(d).count();
    if (ms < 0 || ms > std::numeric_limits<int>::max()) {
      throw runtime_error(std::string("baton: grpc server: ") + name +
                          " is negative or over INT_MAX milliseconds");
    }
    return static_cast<int>(ms);
  };
  const int idle_ms = as_ms(s.options.connection_idle_limit, "connection_idle_limit");
  const int keepalive_ms = as_ms(s.options.keepalive_time, "keepalive_time");
  const int keepalive_timeout_ms = as_ms(s.options.keepalive_timeout, "keepalive_timeout");
  s.loop_gate = baton::detail::gate_of_running_loop();
  ::grpc::ServerBuilder builder;
  auto credentials =
      s.options.credentials ? s.options.credentials : ::grpc::InsecureServerCredentials();
  s.ports.assign(s.options.addresses.size(), 0);
  for (std::size_t i = 0; i < s.options.addresses.size(); ++i) {
    builder.AddListeningPort(s.options.addresses[i], credentials, &s.ports[i]);
  }
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE,
                             static_cast<int>(s.options.max_metadata_bytes));
  builder.SetMaxReceiveMessageSize(static_cast<int>(s.options.max_message_bytes));
  if (s.options.accept_compressed_messages) {
    // gRPC's decompression filter would inflate a message whole before checking its size (a
    // gzip bomb): off, each message arrives as sent and adopt_message() inflates it, bounded.
    builder.AddChannelArgument(GRPC_ARG_ENABLE_PER_MESSAGE_DECOMPRESSION, 0);
  } else {
    // gRPC refuses a call compressed with a disabled algorithm as its metadata arrives, before
    // any of it is read; identity stays.
    builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_DEFLATE, false);
    builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_GZIP, false);
  }
  if (idle_ms > 0) builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, idle_ms);
  if (keepalive_ms > 0) builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive_ms);
  if (keepalive_timeout_ms > 0) {
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive_timeout_ms);
  }
  if (s.options.max_memory_bytes != 0) {
    ::grpc::ResourceQuota quota("baton grpc server");
    quota.Resize(s.options.max_memory_bytes);
    builder.SetResourceQuota(quota);
  }
  builder.RegisterAsyncGenericService(&s.service);
  s.cq = builder.AddCompletionQueue();
  s.server = builder.BuildAndStart();
  bool bound = s.server != nullptr;
  for (int p : s.ports) bound = bound && p != 0;
  if (!bound) {
    if (s.server) s.server->Shutdown();
    s.cq->Shutdown();
    detail::server_state::drain(*s.cq);
    s.server.reset();
    s.cq.reset();
    throw runtime_error("baton: grpc server: cannot listen on every address (taken, or malformed)");
  }
}

int server::port(std::size_t i) const {
  if (i >= state_->ports.size()) throw runtime_error("baton: grpc server: port() before start()");
  return state_->ports[i];
}

task<> server::serve() {
  auto& s = *state_;
  if (!s.server) start();
  if (s.base) throw runtime_error("baton: grpc server: serve() called twice");
  s.base = copy_context();
  if (s.options.poll_on_loop) {
    s.on_loop.emplace(*s.cq, s.accepting);
    if (s.on_loop->attach()) {
      s.polled.store(true, std::memory_order_relaxed);  // relaxed: a report, guards no data
    } else {
      s.on_loop.reset();  // a loop that cannot: the routing thread
    }
  }
  if (!s.on_loop) s.poller.emplace(*s.cq);
  for (int i = 0; i < detail::accept_depth && s.accepting.load(); ++i) s.accept();
  // Every call must be gone, and gRPC's threads too, before serve() returns (handlers and the
  // queue's thread refer to this server). A cancel starts the shutdown; the grace period
  // bounds the wait, so a cancel that arrives meanwhile is held until then.
  bool cancelled = false;
  for (event* e : {&s.drained, &s.finished}) {
    if (e == &s.finished) s.say_calls_gone();
    for (;;) {
      try {
        co_await e->wait();
        break;
      } catch (const cancelled_error&) {
        cancelled = true;
        s.request_shutdown({});
      }
    }
  }
  s.join_shutdown_thread();  // it has set `finished`: only its return is left
  if (s.on_loop) {
    // The loop stops polling the queue; a thread takes its last events (calls the loop's tasks
    // still have on it, the pending wake-up alarm) and says when the queue is empty.
    s.polled.store(false, std::memory_order_relaxed);
    s.on_loop->detach();
    s.cq->Shutdown();
    s.poller.emplace(*s.cq, [&s] { s.cq_drained.set(); });
    for (;;) {
      try {
        co_await s.cq_drained.wait();
        break;
      } catch (const cancelled_error&) {
        cancelled = true;
      }
    }
    s.poller.reset();
    s.on_loop.reset();
  }
  if (cancelled) throw cancelled_error();
}

bool server::polled_by_loop() const noexcept {
  return state_->polled.load(std::memory_order_relaxed);  // relaxed: see serve()
}

void server::shutdown(std::chrono::steady_clock::duration grace) {
  state_->request_shutdown(grace);
}

}  // namespace baton::grpc
