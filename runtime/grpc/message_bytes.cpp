// SPDX-License-Identifier: BSL-1.0
// received_message's parse: protobuf reads a one-slice message where gRPC put it; a message of
// several slices goes through grpc++'s ProtoBufferReader, over a ByteBuffer of the same slices.
#include <baton/grpc/detail/message_bytes.hpp>

#include <grpc/slice.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/slice.h>

#include <climits>
#include <vector>

namespace baton::grpc::detail {

namespace {

/// The buffer's slices: a received_message only ever holds a raw, uncompressed buffer (its
/// contract), which is checked here rather than trusted, because grpc++'s reader would inflate
/// a compressed one whole, past every bound.
const grpc_slice_buffer* slices_of(const received_message& bytes) {
  const grpc_byte_buffer* b = bytes.get();
  if (b == nullptr || b->type != GRPC_BB_RAW || b->data.raw.compression != GRPC_COMPRESS_NONE) {
    return nullptr;
  }
  return &b->data.raw.slice_buffer;
}

}  // namespace

bool parse_proto(const received_message& bytes, google::protobuf::MessageLite& m) {
  const grpc_slice_buffer* slices = slices_of(bytes);
  if (slices == nullptr) return false;
  if (slices->count == 0) return m.ParseFromArray("", 0);
  if (slices->count == 1) {
    const grpc_slice& s = slices->slices[0];
    // protobuf's sizes are ints; gRPC's max_message_bytes is one too, so this never fails.
    if (GRPC_SLICE_LENGTH(s) > static_cast<std::size_t>(INT_MAX)) return false;
    return m.ParseFromArray(GRPC_SLICE_START_PTR(s), static_cast<int>(GRPC_SLICE_LENGTH(s)));
  }
  message_bytes whole = to_message_bytes(bytes);
  ::grpc::ProtoBufferReader reader(&whole.buffer());
  return m.ParseFromZeroCopyStream(&reader) && reader.status().ok();
}

message_bytes to_message_bytes(const received_message& bytes) {
  message_bytes out;
  const grpc_slice_buffer* slices = slices_of(bytes);
  if (slices == nullptr) return out;
  std::vector<::grpc::Slice> refs;  // ByteBuffer's constructor takes its own reference to each
  refs.reserve(slices->count);
  for (std::size_t i = 0; i < slices->count; ++i) {
    refs.emplace_back(slices->slices[i], ::grpc::Slice::ADD_REF);
  }
  ::grpc::ByteBuffer buffer(refs.data(), refs.size());  // an empty list is an empty, valid buffer
  out.buffer().Swap(&buffer);
  return out;
}

}  // namespace baton::grpc::detail
