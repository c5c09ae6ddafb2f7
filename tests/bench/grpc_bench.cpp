// SPDX-License-Identifier: BSL-1.0
// baton_grpc against gRPC's own completion-queue API, in the same run: a unary round trip on
// loopback (one caller), unary calls/s with 100 callers in flight, a client stream of 1000
// messages (the server's read loop), and what filling a call's context from its metadata costs.
// docs/benchmarks.md ("gRPC") reads it.
//
// Both sides run the echo service of tests/echo.proto on 127.0.0.1 in this process.
//   raw:   the generated Echo::AsyncService; one thread drains the server's queue and answers
//          inline; the client starts calls from the benchmark thread and waits on its own queue
//          (the shortest path the async API allows: no hand-off to any other thread).
//   baton: baton::grpc::server and channel on one baton loop (the benchmark thread); the
//          server's handler runs as a task in a context filled from the call's metadata.
// Time is wall-clock (UseRealTime); rows that cross threads also report the CPU time of the
// whole process, which a busy machine disturbs less. The *_two_process rows are the exception to
// "in this process": their server runs in a child (this program run as `grpc_bench
// --echo-server=raw|baton`), so each side has gRPC's poller to itself; their CPU time is this
// process's, and the counter server_us_per_call is the child's CPU per call.
// paired_two_process_100_callers runs both children at once and alternates short blocks of raw
// and baton calls, so that each ratio it reports compares two blocks a few tens of milliseconds
// apart.
// GRPC_BENCH_DEADLOCK_DETECTION=off runs every row with abseil's deadlock detector off (see
// main()); GRPC_BENCH_CALLS sets the calls per iteration of the two separate two-process rows
// (two_process_calls()).
#include <baton/baton.hpp>
#include <baton/grpc/call_context.hpp>
#include <baton/grpc/channel.hpp>
#include <baton/grpc/loop_poller.hpp>
#include <baton/grpc/server.hpp>

#include <benchmark/benchmark.h>

#include <absl/synchronization/mutex.h>

#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpcpp/client_context.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <semaphore>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "echo.grpc.pb.h"

namespace baton_bench {
namespace {

using baton::test::Echo;
using baton::test::Msg;

constexpr const char* unary_method = "/baton.test.Echo/Unary";
constexpr const char* client_stream_method = "/baton.test.Echo/ClientStream";
constexpr int callers = 100;
constexpr int stream_messages = 1000;  // messages per call in the client-streaming rows

std::string target(int port) { return "127.0.0.1:" + std::to_string(port); }

// ---------------------------------------------------------------------------------------------
// gRPC's own async API.

/// What each raw server below is built on: the echo service on 127.0.0.1, one completion queue,
/// and the one thread that drains it. Its owner calls stop() in its own destructor, while the
/// drain the thread runs can still use the owner.
class raw_endpoint {
 public:
  raw_endpoint() {
    ::grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", ::grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    cq = builder.AddCompletionQueue();
    server = builder.BuildAndStart();
  }
  raw_endpoint(const raw_endpoint&) = delete;
  raw_endpoint& operator=(const raw_endpoint&) = delete;
  ~raw_endpoint() { stop(); }

  void run(std::function<void()> drain) { thread = std::thread(std::move(drain)); }
  void stop() {
    if (!thread.joinable()) return;
    server->Shutdown();
    cq->Shutdown();
    thread.join();
  }

  Echo::AsyncService service;
  std::unique_ptr<::grpc::ServerCompletionQueue> cq;
  std::unique_ptr<::grpc::Server> server;
  int port = 0;
  std::thread thread;
};

/// The echo server on the completion-queue API: one thread, answers inline.
class raw_server {
 public:
  raw_server() {
    for (int i = 0; i < callers + 28; ++i) accept();
    endpoint_.run([this] { drain(); });
  }
  ~raw_server() { endpoint_.stop(); }
  int port() const { return endpoint_.port; }

 private:
  struct call {
    ::grpc::ServerContext context;
    Msg request;
    ::grpc::ServerAsyncResponseWriter<Msg> responder{&context};
    bool answered = false;
  };

  void accept() {
    auto* c = new call;
    auto* cq = endpoint_.cq.get();
    endpoint_.service.RequestUnary(&c->context, &c->request, &c->responder, cq, cq, c);
  }

  void drain() {
    void* tag = nullptr;
    bool ok = false;
    while (endpoint_.cq->Next(&tag, &ok)) {
      auto* c = static_cast<call*>(tag);
      if (!ok || c->answered) {
        delete c;
        continue;
      }
      accept();
      c->answered = true;
      c->responder.Finish(c->request, ::grpc::Status::OK, c);
    }
  }

  raw_endpoint endpoint_;
};

/// One client call on the async API.
struct raw_call {
  ::grpc::ClientContext context;
  Msg reply;
  ::grpc::Status status;
  std::unique_ptr<::grpc::ClientAsyncResponseReader<Msg>> rpc;
};

/// The client side of a raw row: a stub to the server, its own completion queue (drained when
/// the row ends) and the message it sends.
struct raw_client {
  explicit raw_client(int port)
      : stub(Echo::NewStub(
            ::grpc::CreateChannel(target(port), ::grpc::InsecureChannelCredentials()))) {
    message.set_text("ping");
  }
  explicit raw_client(const raw_server& srv) : raw_client(srv.port()) {}
  ~raw_client() {
    cq.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq.Next(&tag, &ok)) {
    }
  }
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;

  void start(raw_call& c) {
    c.rpc = stub->PrepareAsyncUnary(&c.context, message, &cq);
    c.rpc->StartCall();
    c.rpc->Finish(&c.reply, &c.status, &c);
  }

  std::unique_ptr<Echo::Stub> stub;
  ::grpc::CompletionQueue cq;
  Msg message;
};

void raw_unary_round_trip(benchmark::State& state) {
  raw_server srv;
  raw_client client(srv);
  for (auto _ : state) {
    raw_call c;
    client.start(c);
    void* tag = nullptr;
    bool ok = false;
    client.cq.Next(&tag, &ok);
    if (!c.status.ok()) state.SkipWithError(c.status.error_message().c_str());
  }
}

/// Makes `total` calls on `client`, keeping `in_flight` of them started at once.
void raw_calls(raw_client& client, int in_flight, int total) {
  std::vector<std::unique_ptr<raw_call>> slots(in_flight);
  int started = 0;
  int done = 0;
  for (auto& s : slots) {
    s = std::make_unique<raw_call>();
    client.start(*s);
    ++started;
  }
  void* tag = nullptr;
  bool ok = false;
  while (done < total && client.cq.Next(&tag, &ok)) {
    auto* c = static_cast<raw_call*>(tag);
    ++done;
    if (started < total) {
      for (auto& s : slots) {
        if (s.get() == c) {
          s = std::make_unique<raw_call>();
          client.start(*s);
          ++started;
          break;
        }
      }
    }
  }
}

void raw_unary_100_callers(benchmark::State& state) {
  raw_server srv;
  raw_client client(srv);
  const int per_iteration = 1000;
  for (auto _ : state) raw_calls(client, callers, per_iteration);
  state.SetItemsProcessed(state.iterations() * per_iteration);
}

/// A client-streaming server on the completion-queue API: one thread, answers inline with the
/// number of messages read (the shortest read loop the async API allows).
class raw_stream_server {
 public:
  raw_stream_server() {
    accept();
    endpoint_.run([this] { drain(); });
  }
  ~raw_stream_server() { endpoint_.stop(); }
  int port() const { return endpoint_.port; }

 private:
  struct call {
    enum step { accepting, reading, finishing };
    ::grpc::ServerContext context;
    ::grpc::ServerAsyncReader<Msg, Msg> reader{&context};
    Msg message;
    int read = 0;
    step at = accepting;
  };

  void accept() {
    auto* c = new call;
    auto* cq = endpoint_.cq.get();
    endpoint_.service.RequestClientStream(&c->context, &c->reader, cq, cq, c);
  }

  void drain() {
    void* tag = nullptr;
    bool ok = false;
    while (endpoint_.cq->Next(&tag, &ok)) {
      auto* c = static_cast<call*>(tag);
      if (c->at == call::finishing || (c->at == call::accepting && !ok)) {
        delete c;
      } else if (ok) {
        if (c->at == call::accepting) accept();
        if (c->at == call::reading) ++c->read;
        c->at = call::reading;
        c->reader.Read(&c->message, c);
      } else {  // the client is done writing
        c->at = call::finishing;
        Msg reply;
        reply.set_n(c->read);
        c->reader.Finish(reply, ::grpc::Status::OK, c);
      }
    }
  }

  raw_endpoint endpoint_;
};

/// One client-streaming call of stream_messages messages, each write awaited before the next.
void raw_client_stream_1000_messages(benchmark::State& state) {
  raw_stream_server srv;
  raw_client client(srv.port());
  auto wait = [&client] {
    void* tag = nullptr;
    bool ok = false;
    client.cq.Next(&tag, &ok);
    return ok;
  };
  for (auto _ : state) {
    ::grpc::ClientContext context;
    Msg reply;
    ::grpc::Status status;
    auto writer = client.stub->PrepareAsyncClientStream(&context, &reply, &client.cq);
    writer->StartCall(&context);
    wait();
    for (int i = 0; i < stream_messages; ++i) {
      writer->Write(client.message, &context);
      wait();
    }
    writer->WritesDone(&context);
    wait();
    writer->Finish(&status, &context);
    wait();
    if (!status.ok() || reply.n() != stream_messages) state.SkipWithError("the stream failed");
  }
  state.SetItemsProcessed(state.iterations() * stream_messages);
}

// ---------------------------------------------------------------------------------------------
// baton_grpc.

/// The client-streaming handler of every baton row's server: counts the messages it reads.
baton::task<Msg> count_messages(baton::grpc::server_stream<Msg, Msg>& in) {
  Msg reply;
  int read = 0;
  while (co_await in.read()) ++read;
  reply.set_n(read);
  co_return reply;
}

/// One client-streaming call of stream_messages messages on `ch`.
baton::task<> baton_stream_call(baton::grpc::channel& ch, const Msg& m) {
  auto call = co_await ch.open<Msg, Msg>(client_stream_method);
  for (int i = 0; i < stream_messages; ++i) co_await call.write(m);
  co_await call.writes_done();
  auto reply = co_await call.read();
  co_await call.finish();
  if (!reply || reply->n() != stream_messages) throw std::runtime_error("the stream failed");
}

/// What a with_baton() row adds to the plain echo: the server's bounds (max_calls and
/// call_time_limit, as the flagship's backend), the two end-of-call hooks (on_call_end and the
/// channel's after_call, each counting), or a response field per call (one trailing field the
/// handler adds and the caller reads through call_options::received).
enum class extra { none, bounds, end_hooks, response_field };

std::uint64_t hooks_seen = 0;  // what the end_hooks rows' hooks count

/// Runs body(channel&) on a baton loop beside an echo server on the same loop; poll: the loop's
/// thread polls the server's queue, and the channel's calls go through it (poll_on_loop).
template <class Body>
void with_baton(Body body, bool poll = false, extra what = extra::none) {
  baton::run([](Body b, bool poll_on_loop, extra with) -> baton::task<> {
    baton::grpc::server_options opts{.addresses = {"127.0.0.1:0"}, .poll_on_loop = poll_on_loop};
    if (with == extra::bounds) {
      opts.max_calls = 1024;
      opts.call_time_limit = std::chrono::seconds(10);
    }
    baton::grpc::server srv(std::move(opts));
    if (with == extra::response_field) {
      srv.add_unary<Msg, Msg>(unary_method,
                              [](Msg m, baton::grpc::unary_call& call) -> baton::task<Msg> {
                                call.add_trailing_metadata("x-cost", "1");
                                co_return m;
                              });
    } else {
      srv.add_unary<Msg, Msg>(unary_method, [](Msg m) -> baton::task<Msg> { co_return m; });
    }
    srv.add_client_streaming<Msg, Msg>(client_stream_method, count_messages);
    baton::grpc::channel_options channel_opts;
    if (with == extra::end_hooks) {
      const auto count = [](const std::string&, const ::grpc::Status&,
                            std::chrono::steady_clock::duration) { ++hooks_seen; };
      srv.on_call_end(count);
      channel_opts.after_call = count;
    }
    srv.start();
    auto serving = baton::spawn(srv.serve());
    co_await baton::sleep(std::chrono::seconds(0));  // serve() starts (and, polled, attaches)
    {
      baton::grpc::channel ch(
          ::grpc::CreateChannel(target(srv.port()), ::grpc::InsecureChannelCredentials()),
          std::move(channel_opts));
      co_await b(ch);
    }
    srv.shutdown();
    co_await serving;
  }(std::move(body), poll, what));
}

/// Makes `total` calls on `ch` from `in_flight` tasks, each starting the next call as its last
/// one returns.
baton::task<> baton_calls(baton::grpc::channel& ch, int in_flight, int total) {
  Msg m;
  m.set_text("ping");
  int started = 0;
  std::vector<baton::task_handle<void>> workers;
  for (int i = 0; i < in_flight; ++i) {
    workers.push_back(baton::spawn(
        [](baton::grpc::channel& c, const Msg& msg, int& next, int all) -> baton::task<> {
          while (next < all) {
            ++next;
            (void)co_await c.call<Msg>(unary_method, msg);
          }
        }(ch, m, started, total)));
  }
  for (auto& w : workers) co_await w;
}

void unary_round_trip(benchmark::State& state, bool poll, extra what = extra::none) {
  with_baton(
      [&state, what](baton::grpc::channel& ch) -> baton::task<> {
        Msg m;
        m.set_text("ping");
        baton::grpc::response_metadata back;
        baton::grpc::call_options opts;
        if (what == extra::response_field) opts.received = &back;
        for (auto _ : state) {
          benchmark::DoNotOptimize(co_await ch.call<Msg>(unary_method, m, opts));
        }
        if (what == extra::response_field && back.find("x-cost") != "1") {
          state.SkipWithError("the response field did not arrive");
        }
      },
      poll, what);
}

void unary_100_callers(benchmark::State& state, bool poll, extra what = extra::none) {
  const int per_iteration = 1000;
  with_baton(
      [&state](baton::grpc::channel& ch) -> baton::task<> {
        for (auto _ : state) co_await baton_calls(ch, callers, per_iteration);
        state.SetItemsProcessed(state.iterations() * per_iteration);
      },
      poll, what);
}

/// Runs body(channel&) on a loop of this thread whose loop_poller polls its calls, against an
/// echo server polling on a loop of a second thread: two threads, as in the raw rows. bounded:
/// as in with_baton.
template <class Body>
void with_baton_two_loops(Body body, bool bounded = false) {
  baton::grpc::server_options opts{.addresses = {"127.0.0.1:0"}, .poll_on_loop = true};
  if (bounded) {
    opts.max_calls = 1024;
    opts.call_time_limit = std::chrono::seconds(10);
  }
  baton::grpc::server srv(std::move(opts));
  srv.add_unary<Msg, Msg>(unary_method, [](Msg m) -> baton::task<Msg> { co_return m; });
  srv.add_client_streaming<Msg, Msg>(client_stream_method, count_messages);
  std::promise<void> up;
  std::thread server_loop([&] {
    baton::run([](baton::grpc::server& s, std::promise<void>& started) -> baton::task<> {
      s.start();
      auto serving = baton::spawn(s.serve());
      co_await baton::sleep(std::chrono::seconds(0));  // serve() attaches before the first call
      started.set_value();
      co_await serving;
    }(srv, up));
  });
  up.get_future().wait();
  baton::run([](Body b, int port) -> baton::task<> {
    baton::grpc::loop_poller poller;
    baton::grpc::channel ch(
        ::grpc::CreateChannel(target(port), ::grpc::InsecureChannelCredentials()));
    co_await b(ch);
  }(std::move(body), srv.port()));
  srv.shutdown();
  server_loop.join();
}

void baton_two_loops_unary_round_trip(benchmark::State& state) {
  with_baton_two_loops([&state](baton::grpc::channel& ch) -> baton::task<> {
    Msg m;
    m.set_text("ping");
    for (auto _ : state) benchmark::DoNotOptimize(co_await ch.call<Msg>(unary_method, m));
  });
}

void two_loops_100_callers(benchmark::State& state, bool bounded) {
  const int per_iteration = 1000;
  with_baton_two_loops(
      [&state](baton::grpc::channel& ch) -> baton::task<> {
        for (auto _ : state) co_await baton_calls(ch, callers, per_iteration);
        state.SetItemsProcessed(state.iterations() * per_iteration);
      },
      bounded);
}

void baton_two_loops_100_callers(benchmark::State& state) { two_loops_100_callers(state, false); }
void baton_two_loops_bounded_100_callers(benchmark::State& state) {
  two_loops_100_callers(state, true);
}

void client_stream_1000_messages(benchmark::State& state, bool poll) {
  with_baton(
      [&state](baton::grpc::channel& ch) -> baton::task<> {
        Msg m;
        m.set_text("ping");
        for (auto _ : state) co_await baton_stream_call(ch, m);
        state.SetItemsProcessed(state.iterations() * stream_messages);
      },
      poll);
}

void baton_polled_client_stream_1000_messages(benchmark::State& state) {
  client_stream_1000_messages(state, true);
}

void baton_two_loops_client_stream_1000_messages(benchmark::State& state) {
  with_baton_two_loops([&state](baton::grpc::channel& ch) -> baton::task<> {
    Msg m;
    m.set_text("ping");
    for (auto _ : state) co_await baton_stream_call(ch, m);
    state.SetItemsProcessed(state.iterations() * stream_messages);
  });
}

void baton_unary_round_trip(benchmark::State& state) { unary_round_trip(state, false); }
void baton_polled_unary_round_trip(benchmark::State& state) { unary_round_trip(state, true); }
void baton_unary_100_callers(benchmark::State& state) { unary_100_callers(state, false); }
void baton_polled_unary_100_callers(benchmark::State& state) { unary_100_callers(state, true); }
// The polled rows again, the server bounded (max_calls, call_time_limit): what the bounds cost.
void baton_polled_bounded_unary_round_trip(benchmark::State& state) {
  unary_round_trip(state, true, extra::bounds);
}
void baton_polled_bounded_100_callers(benchmark::State& state) {
  unary_100_callers(state, true, extra::bounds);
}
// The polled round trip again with on_call_end and after_call set (each counts), and with a
// trailing field the handler adds and the caller reads: what the hooks and the metadata cost.
void baton_polled_hooked_unary_round_trip(benchmark::State& state) {
  unary_round_trip(state, true, extra::end_hooks);
}
void baton_polled_response_field_unary_round_trip(benchmark::State& state) {
  unary_round_trip(state, true, extra::response_field);
}
// The bounds where their locks are shared between threads: a routing thread takes each call
// (links it, takes its max_calls place) while the loop's thread ends it (unlinks, gives back).
void baton_bounded_100_callers(benchmark::State& state) {
  unary_100_callers(state, false, extra::bounds);
}

// ---------------------------------------------------------------------------------------------
// Every core busy: one shard per core, each an echo server with its own port and its share of
// the 100 callers, and nothing shared between shards. raw: a shard is a raw_server (its own
// thread) and a client thread; baton: a shard is one loop polling its own server, whose
// callers' calls ride the same queue. An iteration is 1000 calls split over the shards; the
// benchmark thread only starts each shard's part and waits for it.

int shard_count() { return std::max(1U, std::thread::hardware_concurrency()); }

/// What the benchmark thread and one shard's thread say to each other.
struct shard_gate {
  std::binary_semaphore go{0};
  std::binary_semaphore done{0};
  bool stop = false;  // read after go is acquired

  void finish() {
    stop = true;
    go.release();
  }
};

template <class Shard>
void run_sharded(benchmark::State& state, Shard shard) {
  const int n = shard_count();
  const int per_iteration = 1000;
  std::vector<shard_gate> gates(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back(shard, std::ref(gates[i]), callers / n, per_iteration / n);
  }
  for (auto _ : state) {
    for (auto& g : gates) g.go.release();
    for (auto& g : gates) g.done.acquire();
  }
  for (auto& g : gates) g.finish();
  for (auto& t : threads) t.join();
  state.SetItemsProcessed(state.iterations() * (per_iteration / n) * n);
  state.counters["shards"] = n;
}

void raw_sharded_100_callers(benchmark::State& state) {
  run_sharded(state, [](shard_gate& gate, int in_flight, int total) {
    raw_server srv;
    raw_client client(srv);
    for (;;) {
      gate.go.acquire();
      if (gate.stop) return;
      raw_calls(client, in_flight, total);
      gate.done.release();
    }
  });
}

void baton_sharded_100_callers(benchmark::State& state) {
  run_sharded(state, [](shard_gate& gate, int in_flight, int total) {
    with_baton(
        [&gate, in_flight, total](baton::grpc::channel& ch) -> baton::task<> {
          for (;;) {
            // Waits for the next iteration on a pool thread: the loop keeps polling.
            co_await baton::to_thread([&gate] { gate.go.acquire(); });
            if (gate.stop) co_return;
            co_await baton_calls(ch, in_flight, total);
            gate.done.release();
          }
        },
        true);
  });
}

// ---------------------------------------------------------------------------------------------
// Filling a call's context from its metadata, measured inside a real call (the handler loops on
// its own ServerContext): baton::grpc::extract() + reset, and the server's own path
// (detail::fill() into a fresh context, as each call's task starts in one), against copying the
// three headers into a std::map by hand (what a handler without baton does, before parsing
// anything).

enum class fill_kind { map_copy, extract_and_reset, server_fill };

void fill_context_from(benchmark::State& state, fill_kind kind) {
  baton::run([](benchmark::State& st, fill_kind how) -> baton::task<> {
    baton::grpc::server srv({.addresses = {"127.0.0.1:0"}});
    srv.add_bidi<Msg, Msg>(
        "/baton.test.Echo/Bidi",
        [&st, how](baton::grpc::server_stream<Msg, Msg>& io) -> baton::task<> {
          (void)co_await io.read();
          const ::grpc::ServerContext& call = io.context();
          if (how == fill_kind::extract_and_reset) {
            for (auto _ : st) {
              auto tokens = baton::grpc::extract(call);
              tokens.reset();
            }
          } else if (how == fill_kind::server_fill) {
            for (auto _ : st) {
              baton::context fresh;
              fresh.run([&call] { baton::grpc::detail::fill(call); });
            }
          } else {
            for (auto _ : st) {
              std::map<std::string, std::string> headers;
              for (const auto& [k, v] : call.client_metadata()) {
                std::string name(k.data(), k.size());
                if (name == "traceparent" || name == "tracestate" || name == "baggage") {
                  headers.emplace(std::move(name), std::string(v.data(), v.size()));
                }
              }
              benchmark::DoNotOptimize(headers);
            }
          }
          co_await io.write(Msg());
        });
    srv.start();
    auto serving = baton::spawn(srv.serve());
    {
      baton::grpc::channel ch(
          ::grpc::CreateChannel(target(srv.port()), ::grpc::InsecureChannelCredentials()));
      (void)baton::extract(std::map<std::string, std::string>{
          {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
          {"tracestate", "vendor=abc123,other=xyz"},
          {"baggage", "user=ada,request_id=r-0001,tenant=acme"}});
      baton::grpc::call_options opts;
      opts.timeout = std::chrono::seconds(600);
      auto call = co_await ch.open<Msg, Msg>("/baton.test.Echo/Bidi", opts);
      co_await call.write(Msg());
      (void)co_await call.read();
      co_await call.writes_done();
      co_await call.finish();
    }
    srv.shutdown();
    co_await serving;
  }(state, kind));
}

void baseline_copy_trace_headers(benchmark::State& state) {
  fill_context_from(state, fill_kind::map_copy);
}
void grpc_extract_and_reset(benchmark::State& state) {
  fill_context_from(state, fill_kind::extract_and_reset);
}
void grpc_server_fill(benchmark::State& state) { fill_context_from(state, fill_kind::server_fill); }

// Writing the caller's context into an outgoing call's metadata, what every call() does before
// the call starts: baton::grpc::inject() into a fresh ClientContext with the three headers of
// the rows above in the context, against adding the three values, already made, by hand (the
// least a client without baton does). Both rows make and destroy the ClientContext.
void inject_into_call(benchmark::State& state, bool by_baton) {
  baton::context ctx;
  ctx.run([&state, by_baton] {
    (void)baton::extract(std::map<std::string, std::string>{
        {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        {"tracestate", "vendor=abc123,other=xyz"},
        {"baggage", "user=ada,request_id=r-0001,tenant=acme"}});
    const std::string parent = baton::current_trace()->to_string();
    const std::string state_text = baton::current_trace_state().to_string();
    const std::string bag_text = baton::current_baggage().to_string();
    for (auto _ : state) {
      ::grpc::ClientContext call;
      if (by_baton) {
        baton::grpc::inject(call, std::nullopt);
      } else {
        call.AddMetadata("traceparent", parent);
        call.AddMetadata("tracestate", state_text);
        call.AddMetadata("baggage", bag_text);
      }
      benchmark::DoNotOptimize(call);
    }
  });
}

void baseline_add_trace_headers(benchmark::State& state) { inject_into_call(state, false); }
void grpc_inject(benchmark::State& state) { inject_into_call(state, true); }

// ---------------------------------------------------------------------------------------------
// Two processes: the echo server in a child, the 100 callers here. Within one process gRPC's
// default poller (epoll1) has one epoll set, so a process whose client and server run on two
// threads pays wake-ups between them (see the rows above); here each process has one side.
//   raw:   the child runs a raw_server; the callers are raw_calls() on this thread's queue.
//   baton: the child runs a server polling on its one-thread loop; the callers run on a loop
//          of this thread with a loop_poller.

/// The server side, run by `grpc_bench --echo-server=raw|baton`: prints its port on a line of
/// its own and serves until it is killed (exit status 2 for another kind).
int serve_echo(const std::string& kind) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives the benchmark, however that ends
  if (kind != "raw" && kind != "baton") {
    std::fprintf(stderr, "grpc_bench: --echo-server takes raw or baton, not '%s'\n", kind.c_str());
    return 2;
  }
  if (kind == "raw") {
    raw_server srv;
    std::printf("%d\n", srv.port());
    std::fflush(stdout);
    pause();  // until killed
    return 0;
  }
  baton::run([]() -> baton::task<> {
    baton::grpc::server srv({.addresses = {"127.0.0.1:0"}, .poll_on_loop = true});
    srv.add_unary<Msg, Msg>(unary_method, [](Msg m) -> baton::task<Msg> { co_return m; });
    srv.start();
    auto serving = baton::spawn(srv.serve());
    co_await baton::sleep(std::chrono::seconds(0));  // serve() attaches before the first call
    std::printf("%d\n", srv.port());
    std::fflush(stdout);
    co_await serving;  // until killed
  }());
  return 0;
}

/// A child process serving echo; killed and reaped by the destructor.
class echo_child {
 public:
  explicit echo_child(const char* kind) {
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    // The resolved path rather than /proc/self/exe, which valgrind (--trace-children) cannot
    // start: the row then also runs under callgrind, the child included.
    std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    std::string flag = std::string("--echo-server=") + kind;
    char* argv[] = {self.data(), flag.data(), nullptr};
    const int rc = posix_spawn(&pid_, self.c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    if (rc != 0) {
      close(out[0]);
      throw std::runtime_error("posix_spawn failed");
    }
    std::string line;
    char ch = 0;
    while (read(out[0], &ch, 1) == 1 && ch != '\n') line += ch;
    close(out[0]);
    port_ = std::atoi(line.c_str());
    if (port_ <= 0) throw std::runtime_error("the echo child printed no port");
  }
  ~echo_child() {
    kill(pid_, SIGTERM);  // not SIGKILL: under valgrind the child then still writes its profile
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  echo_child(const echo_child&) = delete;
  echo_child& operator=(const echo_child&) = delete;

  int port() const { return port_; }
  /// The child's CPU time so far (user + system), from /proc.
  double cpu_seconds() const {
    std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
    const std::string text((std::istreambuf_iterator<char>(stat)),
                           std::istreambuf_iterator<char>());
    // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
    std::istringstream rest(text.substr(text.rfind(')') + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i >= 14) ticks += std::stod(field);
    }
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
  }

 private:
  pid_t pid_ = 0;
  int port_ = 0;
};

/// Counts the child's CPU over the timing loop as the counter "server_us_per_call" (the row's
/// own CPU time is this process's).
class child_cpu {
 public:
  explicit child_cpu(const echo_child& child) : child_(child), before_(child.cpu_seconds()) {}
  void report(benchmark::State& state, int per_iteration) const {
    const double calls = static_cast<double>(state.iterations()) * per_iteration;
    state.counters["server_us_per_call"] =
        calls > 0 ? (child_.cpu_seconds() - before_) * 1e6 / calls : 0;
  }

 private:
  const echo_child& child_;
  double before_;
};

/// Calls per iteration of the two separate two-process rows: 1000, or GRPC_BENCH_CALLS when set
/// (for instruction counts under callgrind, which runs one iteration: two runs that differ only
/// in it give the cost of one call, start-up cancelled out).
int two_process_calls() {
  const char* n = std::getenv("GRPC_BENCH_CALLS");
  const int calls = n != nullptr ? std::atoi(n) : 1000;
  return calls > 0 ? calls : 1000;
}

void raw_two_process_100_callers(benchmark::State& state) {
  echo_child child("raw");
  raw_client client(child.port());
  const int per_iteration = two_process_calls();
  const child_cpu cpu(child);
  for (auto _ : state) raw_calls(client, callers, per_iteration);
  cpu.report(state, per_iteration);
  state.SetItemsProcessed(state.iterations() * per_iteration);
}

void baton_two_process_100_callers(benchmark::State& state) {
  echo_child child("baton");
  baton::run([](benchmark::State& st, const echo_child& c) -> baton::task<> {
    baton::grpc::loop_poller poller;
    baton::grpc::channel ch(
        ::grpc::CreateChannel(target(c.port()), ::grpc::InsecureChannelCredentials()));
    const int per_iteration = two_process_calls();
    const child_cpu cpu(c);
    for (auto _ : st) co_await baton_calls(ch, callers, per_iteration);
    cpu.report(st, per_iteration);
    st.SetItemsProcessed(st.iterations() * per_iteration);
  }(state, child));
}

/// This process's CPU time so far (user + system), in seconds.
double own_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
  };
  return seconds(u.ru_utime) + seconds(u.ru_stime);
}

/// The middle of `values` (the mean of the two middle ones for an even count); 0 when empty.
double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

/// What one side (raw or baton) did in the paired row: its calls/s in each block, and the CPU
/// its blocks took altogether in this process (the client side) and in its echo child (the
/// server side). The child's CPU comes from /proc in clock ticks (10 ms), too coarse for one
/// block of a few tens of milliseconds, so CPU per call is taken over all blocks.
struct side_record {
  /// Where a block started: begin() before its calls, end() after them.
  struct mark {
    double client_cpu;
    double server_cpu;
    std::chrono::steady_clock::time_point start;
  };
  std::vector<double> rates;
  double client_cpu = 0;
  double server_cpu = 0;
  double calls = 0;

  static mark begin(const echo_child& child) {
    return {own_cpu_seconds(), child.cpu_seconds(), std::chrono::steady_clock::now()};
  }
  void end(const echo_child& child, int block_calls, const mark& m) {
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - m.start).count();
    rates.push_back(block_calls / wall);
    client_cpu += own_cpu_seconds() - m.client_cpu;
    server_cpu += child.cpu_seconds() - m.server_cpu;
    calls += block_calls;
  }
  double client_us_per_call() const { return calls > 0 ? client_cpu * 1e6 / calls : 0; }
  double server_us_per_call() const { return calls > 0 ? server_cpu * 1e6 / calls : 0; }
};

// The two-process rows, paired: both echo children run at once, this process holds a raw
// client and a baton client, and each iteration is one pair of blocks of 1000 calls with 100
// callers, raw first in even pairs and baton first in odd ones. A pair's two blocks run within
// tens of milliseconds of each other, so a slow phase of the machine slows both, while the
// separate rows above run seconds apart and their ratio moves with whatever the host did in
// between. Counters: the median, lowest and highest of the pairs' ratios (baton's calls/s over
// raw's), each side's median calls/s, and each side's CPU per call in this process (client)
// and in its child (server), over all its blocks. A raw block holds the loop's thread while it
// runs; no baton call is in flight then.
void paired_two_process_100_callers(benchmark::State& state) {
  echo_child raw_child("raw");
  echo_child baton_child("baton");
  raw_client raw(raw_child.port());
  baton::run([](benchmark::State& st, raw_client& rc, const echo_child& raw_side,
                const echo_child& baton_side) -> baton::task<> {
    baton::grpc::loop_poller poller;
    baton::grpc::channel ch(
        ::grpc::CreateChannel(target(baton_side.port()), ::grpc::InsecureChannelCredentials()));
    const int per_block = 1000;
    // One pair first, unrecorded: both connections are set up and both heaps warm.
    raw_calls(rc, callers, per_block);
    co_await baton_calls(ch, callers, per_block);
    side_record r;
    side_record b;
    std::vector<double> ratios;
    for (auto _ : st) {
      const bool raw_first = ratios.size() % 2 == 0;
      for (int turn = 0; turn < 2; ++turn) {
        if ((turn == 0) == raw_first) {
          const auto m = side_record::begin(raw_side);
          raw_calls(rc, callers, per_block);
          r.end(raw_side, per_block, m);
        } else {
          const auto m = side_record::begin(baton_side);
          co_await baton_calls(ch, callers, per_block);
          b.end(baton_side, per_block, m);
        }
      }
      ratios.push_back(b.rates.back() / r.rates.back());
    }
    if (ratios.empty()) co_return;
    st.counters["ratio_median"] = median(ratios);
    st.counters["ratio_min"] = *std::min_element(ratios.begin(), ratios.end());
    st.counters["ratio_max"] = *std::max_element(ratios.begin(), ratios.end());
    st.counters["pairs"] = static_cast<double>(ratios.size());
    st.counters["raw_calls_per_s"] = median(r.rates);
    st.counters["baton_calls_per_s"] = median(b.rates);
    st.counters["raw_client_us"] = r.client_us_per_call();
    st.counters["baton_client_us"] = b.client_us_per_call();
    st.counters["raw_server_us"] = r.server_us_per_call();
    st.counters["baton_server_us"] = b.server_us_per_call();
    st.SetItemsProcessed(st.iterations() * 2 * per_block);
  }(state, raw, raw_child, baton_child));
}

}  // namespace

BENCHMARK(raw_unary_round_trip)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_unary_round_trip)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_polled_unary_round_trip)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_two_loops_unary_round_trip)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(raw_unary_100_callers)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_unary_100_callers)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_polled_unary_100_callers)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_polled_bounded_unary_round_trip)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_polled_bounded_100_callers)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_polled_hooked_unary_round_trip)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_polled_response_field_unary_round_trip)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_two_loops_100_callers)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_bounded_100_callers)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_two_loops_bounded_100_callers)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(raw_client_stream_1000_messages)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_polled_client_stream_1000_messages)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_two_loops_client_stream_1000_messages)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(raw_sharded_100_callers)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_sharded_100_callers)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(raw_two_process_100_callers)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(baton_two_process_100_callers)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(paired_two_process_100_callers)->UseRealTime();
BENCHMARK(baseline_copy_trace_headers);
BENCHMARK(grpc_extract_and_reset);
BENCHMARK(grpc_server_fill);
BENCHMARK(baseline_add_trace_headers);
BENCHMARK(grpc_inject);

}  // namespace baton_bench

int main(int argc, char** argv) {
  // Every row, raw and baton, both processes: glibc's malloc gives the top of its heap back to
  // the kernel once more than the trim threshold (128 KiB) is free there, and takes it back on
  // the next burst. Whether 100 calls in flight push a process across that line depends on how
  // its few long-lived blocks happen to sit, and a process that crosses it pays a brk and page
  // faults every few hundred calls: up to a quarter of its CPU per call on this VM, for raw and
  // baton alike (docs/benchmarks.md, "gRPC: fewer allocations per call"). A fixed, high
  // threshold takes that accident out of the comparison.
  mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
  // GRPC_BENCH_DEADLOCK_DETECTION=off (inherited by the echo child): as in a release build of
  // abseil.
  // Debian builds abseil without NDEBUG, so by default every absl::Mutex that gRPC takes runs
  // the deadlock detector, a debug aid (docs/grpc.md, "Abseil's deadlock detector"). Both
  // processes, raw and baton rows alike.
  if (const char* d = std::getenv("GRPC_BENCH_DEADLOCK_DETECTION");
      d != nullptr && std::string_view(d) == "off") {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  constexpr std::string_view serve_flag = "--echo-server=";
  if (argc == 2 && std::string_view(argv[1]).starts_with(serve_flag)) {
    return baton_bench::serve_echo(
        std::string(std::string_view(argv[1]).substr(serve_flag.size())));
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
