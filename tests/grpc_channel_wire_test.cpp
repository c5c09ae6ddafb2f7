// SPDX-License-Identifier: BSL-1.0
// channel, from the wire: a server written frame by frame (support/h2_wire.hpp) that answers
// with a reply whose length prefix claims 4 GiB and then keeps sending. gRPC checks a reply
// against the receive bound only once it is whole, so what stops this is a memory bound on the
// channel (grpc::ChannelArguments::SetResourceQuota), as docs/grpc.md advises.
#include <baton/grpc/channel.hpp>

#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/use_task.hpp>
#include <doctest/doctest.h>
#include <support/grpc_echo.hpp>
#include <support/h2_wire.hpp>

#include <grpcpp/create_channel.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/support/channel_arguments.h>

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <optional>
#include <string>

using namespace baton_test::grpc_names;
namespace h2 = baton_test::h2;
using boost::asio::ip::tcp;

namespace {

/// A channel to 127.0.0.1:port with a connection of its own and gRPC's buffers bounded.
std::shared_ptr<::grpc::Channel> bounded_channel(std::uint16_t port, std::size_t memory) {
  ::grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  ::grpc::ResourceQuota quota("wire test channel");
  quota.Resize(memory);
  args.SetResourceQuota(quota);
  return ::grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                     ::grpc::InsecureChannelCredentials(), args);
}

}  // namespace

TEST_CASE("a reply that declares 4 GiB and keeps coming fails the call at the channel's quota") {
  baton::run([]() -> task<> {
    tcp::acceptor acceptor(baton::current_executor(), {boost::asio::ip::address_v4::loopback(), 0});
    const auto port = acceptor.local_endpoint().port();
    channel ch(bounded_channel(port, std::size_t{16} << 20));
    auto call = baton::spawn(ch.call<Msg>(unary_method, msg("hello", 1)));

    auto server = co_await h2::connection::accept(acceptor);
    const std::uint32_t stream = co_await server.request();
    REQUIRE(stream != 0);
    co_await server.send(
        h2::frame(h2::headers, h2::end_headers, stream,
                  h2::literal(":status", "200") + h2::literal("content-type", "application/grpc")));
    const std::size_t cap = std::size_t{256} << 20;  // 16 times the bound
    const std::optional<h2::stream_end> end =
        co_await server.pump(stream, h2::grpc_message("", false, 0xffffffffLL), cap);
    CAPTURE(server.sent());
    REQUIRE(end.has_value());  // the client cut the stream (or the connection) before the cap

    std::optional<StatusCode> code;
    try {
      (void)co_await call;
    } catch (const status_error& e) {
      code = e.code();
    }
    REQUIRE(code.has_value());
    CHECK(*code != StatusCode::OK);
  }());
}
