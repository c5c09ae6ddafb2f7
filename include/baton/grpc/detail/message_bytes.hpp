// SPDX-License-Identifier: BSL-1.0
// A message's bytes, and protobuf messages to and from them: what the server's typed views
// (<baton/grpc/server.hpp>) and the channel's calls (<baton/grpc/channel.hpp>) share.
// message_bytes is a grpc::ByteBuffer, what grpc++ sends and receives; received_message is a
// message as the server's core reads hand it over, parsed where it lies.
#pragma once

#include <baton/grpc/status_error.hpp>

#include <grpc/byte_buffer.h>
#include <grpcpp/impl/codegen/proto_utils.h>  // SerializationTraits for protobuf messages
#include <grpcpp/support/byte_buffer.h>

#include <google/protobuf/io/zero_copy_stream.h>
#include <google/protobuf/message_lite.h>

#include <cstdint>
#include <type_traits>
#include <utility>

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

/// A message as a core read on the server received it (uncompressed, or inflated by
/// inflate_message()), owned. Reading it through a grpc::ByteBuffer would cost a second
/// grpc_byte_buffer (grpc++ makes one from core's only privately), so a protobuf message is
/// parsed from its slices directly; other types still read a ByteBuffer (to_message_bytes()).
/// Empty (no buffer) for a compressed message that did not inflate, so that its parse fails.
class received_message {
 public:
  received_message() = default;
  /// Takes `buffer`, which must be raw and uncompressed (null for none).
  explicit received_message(grpc_byte_buffer* buffer) noexcept : buffer_(buffer) {}
  received_message(received_message&& other) noexcept
      : buffer_(std::exchange(other.buffer_, nullptr)) {}
  received_message& operator=(received_message&& other) noexcept {
    std::swap(buffer_, other.buffer_);  // other frees the old buffer when it goes
    return *this;
  }
  received_message(const received_message&) = delete;
  received_message& operator=(const received_message&) = delete;
  ~received_message() {
    if (buffer_ != nullptr) grpc_byte_buffer_destroy(buffer_);
  }

  const grpc_byte_buffer* get() const noexcept { return buffer_; }

 private:
  grpc_byte_buffer* buffer_ = nullptr;
};

/// protobuf's input stream over a slice list, in place: nothing is allocated however many slices
/// there are (a hostile client can make one per byte, each a 32-byte grpc_slice in gRPC's list).
/// The list must outlive the stream. A slice over INT_MAX bytes (more than any message gRPC
/// takes) ends the stream.
class slices_stream final : public google::protobuf::io::ZeroCopyInputStream {
 public:
  explicit slices_stream(const grpc_slice_buffer& slices) noexcept : slices_(slices) {}

  bool Next(const void** data, int* size) override;
  void BackUp(int count) override;  // at most the size the last Next() gave (protobuf's rule)
  bool Skip(int count) override;
  std::int64_t ByteCount() const override { return read_; }

 private:
  const grpc_slice_buffer& slices_;
  std::size_t next_ = 0;   // the slice the next Next() starts at
  int backed_up_ = 0;      // bytes at the end of slice next_ - 1 given back
  std::int64_t read_ = 0;  // bytes handed out and not given back
};

/// Parses `bytes` into m where they lie: one slice (most messages) as an array, several through
/// a stream over the slice list. False when they are not an m, or there are none.
bool parse_proto(const received_message& bytes, google::protobuf::MessageLite& m);

/// The same bytes as message_bytes (each slice referenced once more, nothing copied): for a
/// type read through SerializationTraits of its own. No buffer for none.
message_bytes to_message_bytes(const received_message& bytes);

/// INVALID_ARGUMENT when the bytes are not a Message (or there are none).
template <class Message>
Message parse_message(const received_message& bytes) {
  if constexpr (std::is_base_of_v<google::protobuf::MessageLite, Message>) {
    Message m;
    if (!parse_proto(bytes, m)) {
      throw status_error(::grpc::StatusCode::INVALID_ARGUMENT,
                         "baton: the request is not a valid " + m.GetTypeName());
    }
    return m;
  } else {
    message_bytes copy = to_message_bytes(bytes);
    return parse_message<Message>(copy);
  }
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
