// SPDX-License-Identifier: BSL-1.0
// A message's bytes, and protobuf messages to and from them: what the server's typed views
// (<baton/grpc/server.hpp>) and the channel's calls (<baton/grpc/channel.hpp>) share.
#pragma once

#include <baton/grpc/status_error.hpp>

#include <grpcpp/impl/codegen/proto_utils.h>  // SerializationTraits for protobuf messages
#include <grpcpp/support/byte_buffer.h>

namespace baton::grpc::detail {

/// A message's bytes that move. gRPC 1.51's ByteBuffer declares a copy constructor and no move
/// operations, so std::move of one copies it (a new grpc_byte_buffer, a reference on each
/// slice, a free of the old one); this holder moves by ByteBuffer::Swap(), which copies nothing.
class message_bytes {
 public:
  message_bytes() = default;
  message_bytes(message_bytes&& other) noexcept { bytes_.Swap(&other.bytes_); }
  message_bytes& operator=(message_bytes&& other) noexcept {
    bytes_.Swap(&other.bytes_);  // other takes the old bytes and frees them when it goes
    return *this;
  }
  message_bytes(const message_bytes&) = delete;
  message_bytes& operator=(const message_bytes&) = delete;
  ~message_bytes() = default;

  ::grpc::ByteBuffer& buffer() noexcept { return bytes_; }
  const ::grpc::ByteBuffer& buffer() const noexcept { return bytes_; }

 private:
  ::grpc::ByteBuffer bytes_;
};

/// INVALID_ARGUMENT when the bytes are not a Message (or there are none).
template <class Message>
Message parse_message(message_bytes& bytes) {
  Message m;
  if (!::grpc::SerializationTraits<Message>::Deserialize(&bytes.buffer(), &m).ok()) {
    throw status_error(::grpc::StatusCode::INVALID_ARGUMENT,
                       "baton: the request is not a valid " + m.GetTypeName());
  }
  return m;
}

/// INTERNAL when protobuf cannot serialize m (a message over its 2 GiB limit).
template <class Message>
message_bytes serialize_message(const Message& m) {
  message_bytes bytes;
  bool own = false;
  auto status = ::grpc::SerializationTraits<Message>::Serialize(m, &bytes.buffer(), &own);
  if (!status.ok()) throw status_error(::grpc::StatusCode::INTERNAL, status.error_message());
  return bytes;
}

}  // namespace baton::grpc::detail
