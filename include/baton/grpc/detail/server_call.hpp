// SPDX-License-Identifier: BSL-1.0
// One server call as bytes (the generic gRPC API), for the typed views in
// <baton/grpc/server.hpp>.
#pragma once

#include <baton/grpc/detail/completion.hpp>
#include <baton/grpc/detail/message_bytes.hpp>
#include <baton/grpc/status_error.hpp>
#include <baton/task.hpp>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/impl/codegen/completion_queue_tag.h>
#include <grpcpp/support/byte_buffer.h>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <optional>
#include <string_view>
#include <type_traits>

namespace baton::grpc::detail {

enum class call_kind { unary, server_streaming, client_streaming, bidi };

/// The gRPC side of one call; the server creates one per accepted call and keeps it until both
/// the handler has finished and gRPC has said the call is done.
class server_call {
 public:
  server_call(const server_call&) = delete;
  server_call& operator=(const server_call&) = delete;

  /// The next message, nullopt only once the client is done writing; status_error(
  /// DEADLINE_EXCEEDED) when call_time_limit ended the call, status_error(CANCELLED) when it
  /// ended otherwise before the client finished sending, status_error(RESOURCE_EXHAUSTED) for
  /// a compressed message past max_message_bytes (server.hpp's contract has the details).
  [[nodiscard]] task<std::optional<received_message>> read();
  /// A unary or server-streaming call's one request, read before the handler started: no
  /// suspension, so no task. nullopt when the client sent none. Once only; read() after it is
  /// misuse.
  std::optional<received_message> take_request();
  /// status_error(CANCELLED) when the call is gone (DEADLINE_EXCEEDED: call_time_limit).
  [[nodiscard]] task<> write(const ::grpc::ByteBuffer& message);
  const ::grpc::ServerContext& context() const noexcept { return context_; }
  /// Adds a field to the response's initial (`trailing` false) or trailing metadata, after
  /// check_metadata_field() (call_context.hpp): runtime_error for a field gRPC would refuse or
  /// reserves, for initial metadata once the first write() started (it went out with it), and past
  /// server_options::max_metadata_bytes for all the fields the handler added.
  void add_response_field(bool trailing, std::string_view key, std::string_view value);

 protected:
  server_call();
  ~server_call();
  static status_error time_limit_error();
  /// Starts a core batch receiving one message into *into, its event handed to the queue as
  /// `awaiting` (through read_tag_, whose FinalizeResult gives it back).
  void start_core_read(grpc_byte_buffer** into, void* awaiting);

  /// The tag of a batch read() starts with gRPC's core API (grpc++'s Read reports a client
  /// that finished writing and a call gRPC cut alike, as a failed read; core tells them
  /// apart). A grpc++ queue hands each event's tag to FinalizeResult, which gives back the
  /// awaiting operation's own tag.
  struct core_read_tag final : ::grpc::internal::CompletionQueueTag {
    bool FinalizeResult(void** tag, bool*) override {
      *tag = awaiting;
      return true;
    }
    void* awaiting = nullptr;
  };

  ::grpc::GenericServerContext context_;
  ::grpc::GenericServerAsyncReaderWriter stream_;
  core_read_tag read_tag_;  // the pending read()'s, while reading_
  call_kind kind_ = call_kind::bidi;
  // A unary or server-streaming call's one request, read before the handler starts (by the
  // queue's thread, which saves a trip to the loop); take_request() hands it out.
  std::optional<received_message> request_;
  bool request_read_ = false;  // request_ was filled in (or the client sent none)
  bool reads_closed_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool initial_metadata_sent_ = false;  // by the first write(); add_response_field() then refuses
  std::size_t response_metadata_bytes_ = 0;  // what add_response_field() added, HTTP/2's measure
  std::size_t response_metadata_limit_ = 0;  // server_options::max_metadata_bytes
  std::size_t message_limit_ = 0;            // server_options::max_message_bytes (inflating)
  // Set (by the server's time limits, on the queue's thread) before the call is cancelled for
  // passing server_options::call_time_limit: a read or write that then fails says so.
  std::atomic<bool> time_limit_passed_{false};
};

/// A registered method's typed body: runs the handler, returns the response to send with OK
/// (unary and client streaming) or nullopt (the handler wrote its own).
using method_body = std::function<task<std::optional<message_bytes>>(server_call&)>;

/// The protobuf message types a method is registered with, null for a type that is no
/// protobuf message (grpc::ByteBuffer): what the server compares with the method's compiled
/// .proto, when one is linked in.
struct proto_types {
  const google::protobuf::Descriptor* request = nullptr;
  const google::protobuf::Descriptor* response = nullptr;
};

template <class T>
const google::protobuf::Descriptor* descriptor_of() {
  if constexpr (std::is_base_of_v<google::protobuf::Message, T>) {
    return T::descriptor();
  } else {
    return nullptr;
  }
}

template <class Request, class Response>
proto_types proto_types_of() {
  return {descriptor_of<Request>(), descriptor_of<Response>()};
}

struct server_state;
struct server_seam;

/// A unary or server-streaming call's one request, parsed (no copy or move on the way out):
/// INVALID_ARGUMENT when the client sent none, or bytes that are not a Message.
template <class Message>
Message take_request_message(server_call& call) {
  std::optional<received_message> bytes = call.take_request();
  if (!bytes) {
    throw status_error(::grpc::StatusCode::INVALID_ARGUMENT,
                       "baton: the call ended before its request message");
  }
  return parse_message<Message>(*bytes);
}

}  // namespace baton::grpc::detail
