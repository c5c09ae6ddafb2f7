// SPDX-License-Identifier: BSL-1.0
// inflate_message: a message that arrived compressed, inflated under a cap. gRPC 1.51 inflates a
// message whole before it checks max_message_bytes (4 MiB of gzip can become 4 GiB), so a
// server that accepts compressed messages turns gRPC's own inflation off and reads them here.
#pragma once

// Contract:
//   inflate_message(in, limit, out): `in` is a message as gRPC's core received it, compressed
//   with gzip or deflate (in->data.raw.compression says which; gRPC's "deflate" is the zlib
//   format). Inflates it into `out` in slices of at most 64 KiB and returns
//     whole       out holds the message (at most `limit` bytes);
//     over_limit  it inflates to more than `limit` bytes: inflating stopped one byte past it,
//                 out is left empty;
//     corrupt     it is not one whole stream of that format (truncated, bad data, bytes after
//                 its end), or names another algorithm: out is left empty.
//   Memory: at most `limit` + 1 bytes of output, besides `in` and zlib's state (about 7 KiB
//   and a 32 KiB window).
//   `in` is not consumed (the caller frees it).

#include <baton/grpc/detail/message_bytes.hpp>

#include <grpc/byte_buffer.h>

#include <cstddef>

namespace baton::grpc::detail {

enum class inflated { whole, over_limit, corrupt };

inflated inflate_message(const grpc_byte_buffer& in, std::size_t limit, received_message& out);

}  // namespace baton::grpc::detail
