// SPDX-License-Identifier: BSL-1.0
// One server call as bytes (the generic gRPC API), and protobuf (de)serialisation for the
// typed views in <baton/grpc/server.hpp>.
#pragma once

#include <baton/grpc/detail/completion.hpp>
#include <baton/grpc/status_error.hpp>
#include <baton/task.hpp>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/byte_buffer.h>

#include <functional>
#include <optional>

namespace baton::grpc::detail {

enum class call_kind { unary, server_streaming, client_streaming, bidi };

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

/// The gRPC side of one call; the server creates one per accepted call and keeps it until both
/// the handler has finished and gRPC has said the call is done.
class server_call {
 public:
  server_call(const server_call&) = delete;
  server_call& operator=(const server_call&) = delete;

  /// The next message, nullopt once the client is done writing (or the call is gone).
  [[nodiscard]] task<std::optional<message_bytes>> read();
  /// A unary or server-streaming call's one request, read before the handler started: no
  /// suspension, so no task. nullopt when the client sent none. Once only; read() after it is
  /// misuse.
  std::optional<message_bytes> take_request();
  /// status_error(CANCELLED) when the call is gone.
  [[nodiscard]] task<> write(const ::grpc::ByteBuffer& message);
  const ::grpc::ServerContext& context() const noexcept { return context_; }

 protected:
  server_call();
  ~server_call();

  ::grpc::GenericServerContext context_;
  ::grpc::GenericServerAsyncReaderWriter stream_;
  call_kind kind_ = call_kind::bidi;
  // A unary or server-streaming call's one request, read before the handler starts (by the
  // queue's thread, which saves a trip to the loop); take_request() hands it out.
  std::optional<message_bytes> request_;
  bool request_read_ = false;  // request_ was filled in (or the client sent none)
  bool reads_closed_ = false;
  bool reading_ = false;
  bool writing_ = false;
};

/// A registered method's typed body: runs the handler, returns the response to send with OK
/// (unary and client streaming) or nullopt (the handler wrote its own).
using method_body = std::function<task<std::optional<message_bytes>>(server_call&)>;

struct server_state;

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
/// A unary or server-streaming call's one request, parsed (no copy or move on the way out):
/// INVALID_ARGUMENT when the client sent none, or bytes that are not a Message.
template <class Message>
Message take_request_message(server_call& call) {
  std::optional<message_bytes> bytes = call.take_request();
  if (!bytes) {
    throw status_error(::grpc::StatusCode::INVALID_ARGUMENT,
                       "baton: the call ended before its request message");
  }
  return parse_message<Message>(*bytes);
}

template <class Message>
message_bytes serialize_message(const Message& m) {
  message_bytes bytes;
  bool own = false;
  auto status = ::grpc::SerializationTraits<Message>::Serialize(m, &bytes.buffer(), &own);
  if (!status.ok()) throw status_error(::grpc::StatusCode::INTERNAL, status.error_message());
  return bytes;
}

}  // namespace baton::grpc::detail
