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

/// The gRPC side of one call; the server creates one per accepted call and keeps it until both
/// the handler has finished and gRPC has said the call is done.
class server_call {
 public:
  server_call(const server_call&) = delete;
  server_call& operator=(const server_call&) = delete;

  /// The next message, nullopt once the client is done writing (or the call is gone).
  [[nodiscard]] task<std::optional<::grpc::ByteBuffer>> read();
  /// status_error(CANCELLED) when the call is gone.
  [[nodiscard]] task<> write(const ::grpc::ByteBuffer& message);
  /// After a server-streaming call's one request: read() is misuse from here on.
  void close_reads() noexcept { reads_closed_ = true; }
  const ::grpc::ServerContext& context() const noexcept { return context_; }

 protected:
  server_call();
  ~server_call();

  ::grpc::GenericServerContext context_;
  ::grpc::GenericServerAsyncReaderWriter stream_;
  call_kind kind_ = call_kind::bidi;
  // A unary or server-streaming call's one request, read before the handler starts (by the
  // queue's thread, which saves a trip to the loop); read() hands it out first.
  std::optional<::grpc::ByteBuffer> request_;
  bool request_read_ = false;  // request_ was filled in (or the client sent none)
  bool reads_closed_ = false;
  bool reading_ = false;
  bool writing_ = false;
};

/// A registered method's typed body: runs the handler, returns the response to send with OK
/// (unary and client streaming) or nullopt (the handler wrote its own).
using method_body = std::function<task<std::optional<::grpc::ByteBuffer>>(server_call&)>;

struct server_state;

/// INVALID_ARGUMENT when the bytes are not a Message (or there are none).
template <class Message>
Message parse_message(::grpc::ByteBuffer& bytes) {
  Message m;
  if (!::grpc::SerializationTraits<Message>::Deserialize(&bytes, &m).ok()) {
    throw status_error(::grpc::StatusCode::INVALID_ARGUMENT,
                       "baton: the request is not a valid " + m.GetTypeName());
  }
  return m;
}
template <class Message>
Message require_request(std::optional<Message> m) {
  if (!m) {
    throw status_error(::grpc::StatusCode::INVALID_ARGUMENT,
                       "baton: the call ended before its request message");
  }
  return std::move(*m);
}

template <class Message>
::grpc::ByteBuffer serialize_message(const Message& m) {
  ::grpc::ByteBuffer bytes;
  bool own = false;
  auto status = ::grpc::SerializationTraits<Message>::Serialize(m, &bytes, &own);
  if (!status.ok()) throw status_error(::grpc::StatusCode::INTERNAL, status.error_message());
  return bytes;
}

}  // namespace baton::grpc::detail
