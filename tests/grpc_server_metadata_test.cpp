// SPDX-License-Identifier: BSL-1.0
// Response metadata: what a handler adds (server.hpp's unary_call and server_stream) reaches the
// caller (channel.hpp's call_options::received, a client_stream's context()), with the reply
// or with a failing status; fields gRPC would refuse, initial metadata after the first write and
// more than max_metadata_bytes are runtime_errors, never a crash; so is a field a caller adds
// that gRPC would refuse.
#include <baton/grpc/channel.hpp>
#include <baton/grpc/server.hpp>

#include <baton/errors.hpp>
#include <baton/task.hpp>
#include <doctest/doctest.h>
#include <support/grpc_echo.hpp>
#include <support/run_test.hpp>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

using namespace baton_test::grpc_names;
using baton::grpc::response_metadata;
using baton_test::run_task;

namespace {

/// The first value of `key` in a gRPC metadata map, or "none".
std::string value_in(const std::multimap<::grpc::string_ref, ::grpc::string_ref>& fields,
                     const char* key) {
  auto it = fields.find(key);
  return it == fields.end() ? std::string("none")
                            : std::string(it->second.data(), it->second.size());
}

/// Adds each field in turn, catching what add() throws: how many it refused, and the first
/// refusal's message.
struct refusals {
  int count = 0;
  std::string first;

  template <class Add>
  void attempt(Add add) {
    try {
      add();
    } catch (const baton::runtime_error& e) {
      if (count++ == 0) first = e.what();
    }
  }
};

const std::string binary_value("\x00\x01\n\xff tail", 9);

}  // namespace

TEST_CASE("a unary handler's initial and trailing metadata reach the caller, text and binary") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [](Msg m, unary_call& call) -> task<Msg> {
            call.add_initial_metadata("x-served-by", "node-7");
            call.add_trailing_metadata("x-cost", std::to_string(m.text().size()));
            call.add_trailing_metadata("x-blob-bin", binary_value);
            call.add_trailing_metadata("x-cost", "again");  // a key may repeat
            co_return msg(m.text() + "@" + call.context().peer().substr(0, 4));
          });
        },
        [](channel& ch, server&) -> task<> {
          response_metadata seen;
          baton::grpc::call_options opts;
          opts.received = &seen;
          Msg r = co_await ch.call<Msg>(unary_method, msg("abc"), opts);
          CHECK(r.text() == "abc@ipv4");
          CHECK(seen.find("x-served-by") == "node-7");
          CHECK(seen.find("x-cost") == "3");
          CHECK(seen.find("x-blob-bin") == binary_value);
          CHECK(!seen.find("x-absent"));
          std::vector<std::string> costs;
          for (const auto& [k, v] : seen.trailing) {
            if (k == "x-cost") costs.push_back(v);
          }
          CHECK(costs == std::vector<std::string>{"3", "again"});
          bool initial_has_it = false;
          for (const auto& [k, v] : seen.initial) initial_has_it |= k == "x-served-by";
          CHECK(initial_has_it);
        },
        mode);
  });
}

TEST_CASE(
    "trailing metadata goes out with a handler's status_error, and is read before the throw") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [](Msg, unary_call& call) -> task<Msg> {
            call.add_trailing_metadata("retry-after-ms", "250");
            throw status_error(StatusCode::UNAVAILABLE, "overloaded");
            co_return Msg();
          });
        },
        [](channel& ch, server&) -> task<> {
          response_metadata seen;
          baton::grpc::call_options opts;
          opts.received = &seen;
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("x"), opts)) ==
                StatusCode::UNAVAILABLE);
          CHECK(seen.find("retry-after-ms") == "250");
        },
        mode);
  });
}

TEST_CASE("a server stream's initial metadata goes out with its first write, and not after it") {
  in_each_mode([](server_options mode) -> task<> {
    std::string late_refusal;
    co_await with_server(
        [&late_refusal](server& s) {
          s.add_server_streaming<Msg, Msg>(
              server_stream_method, [&late_refusal](Msg m, server_stream<Msg, Msg>& out) -> task<> {
                out.add_initial_metadata("x-total", std::to_string(m.n()));
                for (int i = 0; i < m.n(); ++i) {
                  co_await out.write(msg("r", i));
                  try {
                    out.add_initial_metadata("x-late", "1");
                  } catch (const baton::runtime_error& e) {
                    late_refusal = e.what();
                  }
                }
                out.add_trailing_metadata("x-written", std::to_string(m.n()));
              });
        },
        [&late_refusal](channel& ch, server&) -> task<> {
          auto call = co_await ch.open<Msg, Msg>(server_stream_method);
          co_await call.write(msg("go", 3));
          co_await call.writes_done();
          auto first = co_await call.read();
          REQUIRE(first);
          CHECK(value_in(call.context().GetServerInitialMetadata(), "x-total") == "3");
          int more = 0;
          while (co_await call.read()) ++more;
          co_await call.finish();
          CHECK(more == 2);
          CHECK(value_in(call.context().GetServerInitialMetadata(), "x-late") == "none");
          CHECK(value_in(call.context().GetServerTrailingMetadata(), "x-written") == "3");
          CHECK(late_refusal.find("after the first write()") != std::string::npos);
          CHECK(late_refusal.find("'x-late'") != std::string::npos);
        },
        mode);
  });
}

TEST_CASE("a bidi handler's trailing metadata, added after its writes, ends the stream") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_bidi<Msg, Msg>(bidi_method, [](server_stream<Msg, Msg>& st) -> task<> {
            int n = 0;
            while (auto m = co_await st.read()) {
              co_await st.write(*m);
              ++n;
            }
            st.add_trailing_metadata("x-echoed", std::to_string(n));
          });
        },
        [](channel& ch, server&) -> task<> {
          auto call = co_await ch.open<Msg, Msg>(bidi_method);
          for (int i = 0; i < 4; ++i) {
            co_await call.write(msg("m", i));
            CHECK((co_await call.read())->n() == i);
          }
          co_await call.writes_done();
          CHECK(!co_await call.read());
          co_await call.finish();
          CHECK(value_in(call.context().GetServerTrailingMetadata(), "x-echoed") == "4");
        },
        mode);
  });
}

TEST_CASE("an on_call hook taking call_view& adds fields to every reply and to its refusals") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.on_call([](const std::string&, baton::grpc::call_view& call) -> task<> {
            const auto& fields = call.context().client_metadata();
            const auto id = fields.find("x-request-id");
            call.add_initial_metadata("x-request-id",
                                      id == fields.end()
                                          ? "none"
                                          : std::string_view(id->second.data(), id->second.size()));
            if (fields.find("authorization") == fields.end()) {
              call.add_trailing_metadata("x-auth-hint", "bearer");
              throw status_error(StatusCode::UNAUTHENTICATED, "no credentials");
            }
            co_return;
          });
          s.add_unary<Msg, Msg>(unary_method, [](Msg m, unary_call& call) -> task<Msg> {
            call.add_trailing_metadata("x-handler", "ran");  // beside the hook's fields
            co_return m;
          });
          s.add_bidi<Msg, Msg>(bidi_method, [](server_stream<Msg, Msg>& st) -> task<> {
            while (auto m = co_await st.read()) co_await st.write(*m);
          });
        },
        [](channel& ch, server&) -> task<> {
          baton::grpc::call_options ok;
          ok.metadata = {{"x-request-id", "r-17"}, {"authorization", "Bearer ada"}};
          response_metadata seen;
          ok.received = &seen;
          CHECK((co_await ch.call<Msg>(unary_method, msg("x", 3), ok)).n() == 3);
          CHECK(seen.find("x-request-id") == "r-17");
          CHECK(seen.find("x-handler") == "ran");
          CHECK(!seen.find("x-auth-hint"));

          baton::grpc::call_options anonymous;
          anonymous.metadata = {{"x-request-id", "r-18"}};
          response_metadata refused;
          anonymous.received = &refused;
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("x"), anonymous)) ==
                StatusCode::UNAUTHENTICATED);
          CHECK(refused.find("x-request-id") == "r-18");  // initial fields go with an error too
          CHECK(refused.find("x-auth-hint") == "bearer");
          CHECK(!refused.find("x-handler"));  // the handler never ran

          baton::grpc::call_options stream_opts;
          stream_opts.metadata = {{"x-request-id", "r-19"}, {"authorization", "Bearer ada"}};
          auto call = co_await ch.open<Msg, Msg>(bidi_method, stream_opts);
          co_await call.write(msg("m", 1));
          CHECK((co_await call.read())->n() == 1);
          CHECK(value_in(call.context().GetServerInitialMetadata(), "x-request-id") == "r-19");
          co_await call.writes_done();
          CHECK(!co_await call.read());
          co_await call.finish();
        },
        mode);
  });
}

TEST_CASE("a response field gRPC would refuse or reserves is a runtime_error naming its key") {
  in_each_mode([](server_options mode) -> task<> {
    refusals seen;
    co_await with_server(
        [&seen](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [&seen](Msg, unary_call& call) -> task<Msg> {
            const std::vector<std::pair<std::string, std::string>> bad = {
                {"", "empty key"},
                {"X-Upper", "uppercase"},
                {"bad key", "a space"},
                {":path", "a pseudo-header"},
                {"grpc-status", "0"},
                {"grpc-anything", "reserved prefix"},
                {"content-type", "text/html"},
                {"te", "trailers"},
                {"connection", "close"},
                {std::string("x-nul\0", 6), "a NUL in the key"},
                {"x-newline", "a\r\nset-cookie: evil=1"},
                {"x-tab", "a\tb"},
                {"x-high", "caf\xc3\xa9"},
                {"x-del", "\x7f"},
            };
            for (const auto& [key, value] : bad) {
              seen.attempt([&] { call.add_initial_metadata(key, value); });
              seen.attempt([&] { call.add_trailing_metadata(key, value); });
            }
            call.add_trailing_metadata("x-ok-bin", binary_value);  // any bytes under -bin
            call.add_trailing_metadata("x.ok_key-9", " printable ~ ");
            co_return msg("served");
          });
        },
        [&seen](channel& ch, server&) -> task<> {
          response_metadata got;
          baton::grpc::call_options opts;
          opts.received = &got;
          CHECK((co_await ch.call<Msg>(unary_method, msg("x"), opts)).text() == "served");
          CHECK(seen.count == 28);
          CHECK(seen.first.find("metadata key '' is empty") != std::string::npos);
          CHECK(got.find("x-ok-bin") == binary_value);
          CHECK(got.find("x.ok_key-9") == " printable ~ ");
          CHECK(!got.find("x-newline"));
        },
        mode);
  });
}

TEST_CASE("a client's text echoed into a response field cannot inject: the call ends UNKNOWN") {
  in_each_mode([](server_options mode) -> task<> {
    co_await with_server(
        [](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [](Msg m, unary_call& call) -> task<Msg> {
            call.add_initial_metadata("x-echo", m.text());
            co_return m;
          });
        },
        [](channel& ch, server&) -> task<> {
          try {
            (void)co_await ch.call<Msg>(unary_method, msg("evil\r\nx-admin: 1"));
            FAIL("the call succeeded");
          } catch (const status_error& e) {
            CHECK(e.code() == StatusCode::UNKNOWN);
            CHECK(e.message().find("printable ASCII") != std::string::npos);
          }
          response_metadata got;
          baton::grpc::call_options opts;
          opts.received = &got;
          CHECK((co_await ch.call<Msg>(unary_method, msg("fine"), opts)).text() == "fine");
          CHECK(got.find("x-echo") == "fine");
          CHECK(!got.find("x-admin"));
        },
        mode);
  });
}

TEST_CASE("response metadata past max_metadata_bytes is refused; the fields that fit go out") {
  in_each_mode([](server_options mode) -> task<> {
    mode.max_metadata_bytes = 1024;
    refusals seen;
    int added = 0;
    co_await with_server(
        [&seen, &added](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [&seen, &added](Msg, unary_call& call) -> task<Msg> {
            const std::string value(100, 'v');  // each field: 4 + 100 + 32 = 136 bytes
            for (int i = 0; i < 10; ++i) {
              const int before = seen.count;
              const std::string key = "x-f" + std::to_string(i);
              seen.attempt([&] {
                if (i % 2 == 0) {
                  call.add_initial_metadata(key, value);
                } else {
                  call.add_trailing_metadata(key, value);
                }
              });
              if (seen.count == before) ++added;
            }
            co_return msg("ok");
          });
        },
        [&seen, &added](channel& ch, server&) -> task<> {
          response_metadata got;
          baton::grpc::call_options opts;
          opts.received = &got;
          CHECK((co_await ch.call<Msg>(unary_method, msg("x"), opts)).text() == "ok");
          CHECK(added == 7);  // 7 * 136 = 952 <= 1024 < 8 * 136
          CHECK(seen.count == 3);
          CHECK(seen.first.find("over max_metadata_bytes (key 'x-f7')") != std::string::npos);
          int arrived = 0;
          for (const auto* fields : {&got.initial, &got.trailing}) {
            for (const auto& [k, v] : *fields) arrived += k.rfind("x-f", 0) == 0 ? 1 : 0;
          }
          CHECK(arrived == 7);
        },
        mode);
  });
}

TEST_CASE("more response metadata than the client accepts fails the call, not the processes") {
  in_each_mode([](server_options mode) -> task<> {
    mode.max_metadata_bytes = 256 * 1024;
    co_await with_server(
        [](server& s) {
          s.add_unary<Msg, Msg>(unary_method, [](Msg m, unary_call& call) -> task<Msg> {
            call.add_initial_metadata("x-big", std::string(static_cast<std::size_t>(m.n()), 'b'));
            co_return m;
          });
        },
        [](channel& ch, server& s) -> task<> {
          response_metadata got;
          baton::grpc::call_options opts;
          opts.received = &got;
          CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("x", 100 * 1024), opts)) ==
                StatusCode::RESOURCE_EXHAUSTED);
          CHECK(!got.find("x-big"));
          // On a connection of its own: gRPC 1.51's client once failed the next call on the
          // same connection with "received initial metadata size exceeds limit" for a 10-byte
          // field (a full TSan suite run; not again in 50 runs alone). The server and the
          // process staying sound are what this test is about.
          channel fresh(baton_test::connect_fresh(s));
          CHECK((co_await fresh.call<Msg>(unary_method, msg("small", 10), opts)).text() == "small");
          CHECK(got.find("x-big") == std::string(10, 'b'));
        },
        mode);
  });
}

TEST_CASE("a call that never reached a server fills `received` with nothing") {
  run_task([]() -> task<> {
    // A port nothing listens on: bind one, note it, close it.
    baton::grpc::server probe({.addresses = {"127.0.0.1:0"}});
    probe.start();
    const int port = probe.port();
    probe.shutdown();
    co_await probe.serve();
    baton::grpc::channel ch(::grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                  ::grpc::InsecureChannelCredentials()));
    response_metadata got;
    got.initial.emplace_back("stale", "from before");
    baton::grpc::call_options opts;
    opts.received = &got;
    opts.timeout = std::chrono::seconds(5);
    CHECK(co_await status_of(ch.call<Msg>(unary_method, msg("x"), opts)) ==
          StatusCode::UNAVAILABLE);
    CHECK(got.initial.empty());
    CHECK(!got.find("stale"));
  });
}

TEST_CASE("a caller's metadata field gRPC would refuse is a runtime_error, and no call is made") {
  in_each_mode([](server_options mode) -> task<> {
    int ran = 0;
    co_await with_server(
        counting_echo(ran),
        [&ran](channel& ch, server&) -> task<> {
          const std::vector<std::pair<std::string, std::string>> bad = {
              {"X-Upper", "v"}, {"x-newline", "a\r\nx-admin: 1"}, {"grpc-timeout", "1S"}};
          int refused = 0;
          for (const auto& field : bad) {
            baton::grpc::call_options opts;
            opts.metadata.push_back(field);
            try {
              (void)co_await ch.call<Msg>(unary_method, msg("x"), opts);
            } catch (const baton::runtime_error& e) {
              refused += std::string(e.what()).find("metadata key") != std::string::npos;
            }
            try {
              (void)co_await ch.open<Msg, Msg>(bidi_method, opts);
            } catch (const baton::runtime_error& e) {
              refused += std::string(e.what()).find("metadata key") != std::string::npos;
            }
          }
          CHECK(refused == 6);
          CHECK(ran == 0);
          baton::grpc::call_options fine;
          fine.metadata.emplace_back("x-bytes-bin", binary_value);
          CHECK((co_await ch.call<Msg>(unary_method, msg("ok", 1), fine)).n() == 1);
          CHECK(ran == 1);
        },
        mode);
  });
}
