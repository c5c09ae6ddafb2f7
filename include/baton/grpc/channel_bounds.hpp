// SPDX-License-Identifier: BSL-1.0
// channel_bounds: what a server may make a client's channel hold, as gRPC channel arguments.
#pragma once

// Contract:
//   bounded_channel_arguments(bounds)  gRPC channel arguments for ::grpc::CreateCustomChannel
//                 (add your own to them before creating the channel) that hold every call on
//                 the channel to `bounds`, against a server that is slow, broken or hostile:
//     max_message_bytes   a reply larger than this fails its call with RESOURCE_EXHAUSTED.
//                         gRPC checks it once the reply is whole (see max_memory_bytes).
//     max_metadata_bytes  the server's initial or trailing metadata over this (HTTP/2's
//                         measure: each field's name and value plus 32 bytes) fails the call
//                         with RESOURCE_EXHAUSTED.
//     max_memory_bytes    what gRPC may buffer for the channel's connections altogether (a
//                         ResourceQuota): what bounds a reply still arriving, whose length
//                         prefix may claim up to 4 GiB. gRPC's list of a reply's frames (32
//                         bytes a frame) is not counted: at 16 MiB, a reply sent in one-byte
//                         frames peaked at 71 MiB before its call failed. Zero: no bound.
//     accept_compressed_replies   off (the default), a reply the server compresses (gzip,
//                         deflate) fails its call with UNIMPLEMENTED as its headers
//                         arrive, before any of it is inflated. On, gRPC 1.51 inflates a reply
//                         whole before it checks max_message_bytes (4 MiB of gzip can become 4
//                         GiB): for servers you trust.
//   Calls still send uncompressed (gRPC's default); nothing here changes what goes out.
//   Exceptions:   baton::runtime_error when max_message_bytes or max_metadata_bytes is over
//                 INT_MAX (gRPC's limits are ints).
//
// Example:
//   baton::grpc::channel users(::grpc::CreateCustomChannel(
//       "users.internal:50051", ::grpc::InsecureChannelCredentials(),
//       baton::grpc::bounded_channel_arguments({.max_memory_bytes = 64 << 20})));

#include <grpcpp/support/channel_arguments.h>

#include <cstddef>

namespace baton::grpc {

struct channel_bounds {
  std::size_t max_message_bytes = 4 * 1024 * 1024;  // per reply received (gRPC's default)
  std::size_t max_metadata_bytes = 16 * 1024;       // per call, each of initial and trailing
  std::size_t max_memory_bytes = 0;                 // gRPC's buffers, the whole channel (0: none)
  bool accept_compressed_replies = false;           // off: fail compressed replies uninflated
};

/// Channel arguments holding every call to `bounds` (see the contract).
[[nodiscard]] ::grpc::ChannelArguments bounded_channel_arguments(const channel_bounds& bounds = {});

}  // namespace baton::grpc
