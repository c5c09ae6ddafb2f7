// SPDX-License-Identifier: BSL-1.0
// received_message's parse: protobuf reads the message where gRPC put it, a one-slice message as
// one array, a message of several slices through a stream over the buffer's own slice list.
#include <baton/grpc/detail/message_bytes.hpp>

#include <grpc/slice.h>
#include <grpcpp/support/slice.h>

#include <climits>
#include <cstdint>
#include <vector>

namespace baton::grpc::detail {

namespace {

/// The buffer's slices: a received_message only ever holds a raw, uncompressed buffer (its
/// contract), which is checked here rather than trusted: compressed bytes would parse as
/// garbage, and grpc++'s readers of a ByteBuffer made of them would inflate it whole, past every
/// bound.
const grpc_slice_buffer* slices_of(const received_message& bytes) {
  const grpc_byte_buffer* b = bytes.get();
  if (b == nullptr || b->type != GRPC_BB_RAW || b->data.raw.compression != GRPC_COMPRESS_NONE) {
    return nullptr;
  }
  return &b->data.raw.slice_buffer;
}

}  // namespace

bool slices_stream::Next(const void** data, int* size) {
  if (backed_up_ > 0) {  // the end of the last slice handed out, given back by BackUp()
    *data = GRPC_SLICE_END_PTR(slices_.slices[next_ - 1]) - backed_up_;
    *size = backed_up_;
    read_ += backed_up_;
    backed_up_ = 0;
    return true;
  }
  while (next_ < slices_.count) {
    const grpc_slice& s = slices_.slices[next_++];
    const std::size_t n = GRPC_SLICE_LENGTH(s);
    if (n == 0) continue;                                     // nothing to hand out
    if (n > static_cast<std::size_t>(INT_MAX)) return false;  // over any message gRPC takes
    *data = GRPC_SLICE_START_PTR(s);
    *size = static_cast<int>(n);
    read_ += static_cast<std::int64_t>(n);
    return true;
  }
  return false;
}

void slices_stream::BackUp(int count) {
  backed_up_ = count;
  read_ -= count;
}

bool slices_stream::Skip(int count) {
  const void* data = nullptr;
  int size = 0;
  while (count > 0) {
    if (!Next(&data, &size)) return false;
    if (size > count) {
      BackUp(size - count);
      return true;
    }
    count -= size;
  }
  return true;
}

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
  slices_stream in(*slices);
  return m.ParseFromZeroCopyStream(&in);
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
