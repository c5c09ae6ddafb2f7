// SPDX-License-Identifier: BSL-1.0
// bounded_channel_arguments: the bounds as gRPC 1.51's channel arguments.
#include <baton/grpc/channel_bounds.hpp>

#include <baton/errors.hpp>

#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpcpp/resource_quota.h>

#include <climits>
#include <string>

namespace baton::grpc {

namespace {

int as_int(std::size_t bytes, const char* name) {
  if (bytes > static_cast<std::size_t>(INT_MAX)) {
    throw runtime_error(std::string("baton: grpc channel bounds: ") + name +
                        " is over INT_MAX (gRPC's limit is an int)");
  }
  return static_cast<int>(bytes);
}

}  // namespace

::grpc::ChannelArguments bounded_channel_arguments(const channel_bounds& bounds) {
  ::grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(as_int(bounds.max_message_bytes, "max_message_bytes"));
  args.SetInt(GRPC_ARG_MAX_METADATA_SIZE, as_int(bounds.max_metadata_bytes, "max_metadata_bytes"));
  if (!bounds.accept_compressed_replies) {
    // The channel's enabled algorithms, as a bit per grpc_compression_algorithm: identity
    // only. gRPC then fails a reply in another encoding as its headers arrive, before any
    // message is inflated (1.51 inflates a message whole before checking its size).
    args.SetInt(GRPC_COMPRESSION_CHANNEL_ENABLED_ALGORITHMS_BITSET, 1 << GRPC_COMPRESS_NONE);
  }
  if (bounds.max_memory_bytes != 0) {
    ::grpc::ResourceQuota quota("baton bounded channel");
    quota.Resize(bounds.max_memory_bytes);
    args.SetResourceQuota(quota);
  }
  return args;
}

}  // namespace baton::grpc
