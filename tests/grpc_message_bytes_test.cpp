// SPDX-License-Identifier: BSL-1.0
// received_message: what the server's core reads hand over, parsed in place or through a
// ByteBuffer of the same slices, and never inflated.
#include <baton/grpc/detail/message_bytes.hpp>

#include "echo.pb.h"

#include <doctest/doctest.h>

#include <grpc/slice.h>
#include <grpcpp/support/slice.h>

#include <cstring>
#include <string>
#include <vector>

using baton::grpc::status_error;
using baton::grpc::detail::parse_message;
using baton::grpc::detail::parse_proto;
using baton::grpc::detail::received_message;
using baton::grpc::detail::slices_stream;
using baton::grpc::detail::to_message_bytes;
using baton::test::Msg;

namespace {

Msg sample() {
  Msg m;
  m.set_text("a note long enough to be split at many places: " + std::string(40, 'x'));
  m.set_n(123456789);
  return m;
}

/// `bytes` as core would hand them over, cut into slices at `cuts` (ascending offsets).
received_message received(const std::string& bytes, const std::vector<std::size_t>& cuts = {},
                          grpc_compression_algorithm compression = GRPC_COMPRESS_NONE) {
  // Slices of their own allocations: gRPC joins small inlined slices into one as it lists them.
  const auto slice = [&](std::size_t from, std::size_t to) {
    grpc_slice s = grpc_slice_malloc_large(to - from);
    std::memcpy(GRPC_SLICE_START_PTR(s), bytes.data() + from, to - from);
    return s;
  };
  std::vector<grpc_slice> slices;
  std::size_t from = 0;
  for (std::size_t to : cuts) {
    slices.push_back(slice(from, to));
    from = to;
  }
  if (from < bytes.size() || slices.empty()) slices.push_back(slice(from, bytes.size()));
  grpc_byte_buffer* b =
      grpc_raw_compressed_byte_buffer_create(slices.data(), slices.size(), compression);
  for (grpc_slice& s : slices) grpc_slice_unref(s);  // the buffer holds its own references
  return received_message(b);
}

std::string bytes_of(::grpc::ByteBuffer& b) {
  std::vector<::grpc::Slice> slices;
  REQUIRE(b.Dump(&slices).ok());
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

/// A message type that is no protobuf message: its bytes as they came.
struct raw_text {
  std::string bytes;
  std::string GetTypeName() const { return "raw_text"; }
};

}  // namespace

template <>
class grpc::SerializationTraits<raw_text> {
 public:
  static ::grpc::Status Deserialize(::grpc::ByteBuffer* buffer, raw_text* out) {
    out->bytes = bytes_of(*buffer);
    return ::grpc::Status::OK;
  }
};

TEST_CASE("a message in one slice parses where it lies") {
  const Msg m = sample();
  const Msg back = parse_message<Msg>(received(m.SerializeAsString()));
  CHECK(back.text() == m.text());
  CHECK(back.n() == m.n());
}

TEST_CASE("a message cut into slices at any place, or at every byte, parses the same") {
  const Msg m = sample();
  const std::string bytes = m.SerializeAsString();
  for (std::size_t cut = 1; cut < bytes.size(); ++cut) {
    const Msg back = parse_message<Msg>(received(bytes, {cut}));
    REQUIRE(back.text() == m.text());
    REQUIRE(back.n() == m.n());
  }
  std::vector<std::size_t> every;
  for (std::size_t at = 1; at < bytes.size(); ++at) every.push_back(at);
  const Msg back = parse_message<Msg>(received(bytes, every));
  CHECK(back.text() == m.text());
  CHECK(back.n() == m.n());
}

TEST_CASE("empty slices anywhere among the bytes change nothing") {
  const Msg m = sample();
  const std::string bytes = m.SerializeAsString();
  const Msg back = parse_message<Msg>(received(bytes, {0, 0, 1, 1, 1, 7, 7, bytes.size()}));
  CHECK(back.text() == m.text());
  CHECK(back.n() == m.n());
}

TEST_CASE("the slice stream hands out each slice, takes bytes back and skips across slices") {
  const received_message r = received("abcdefghij", {3, 3, 5});  // "abc" "" "de" "fghij"
  slices_stream in(r.get()->data.raw.slice_buffer);
  const void* data = nullptr;
  int size = 0;
  const auto text = [&] { return std::string(static_cast<const char*>(data), size); };
  REQUIRE(in.Next(&data, &size));
  CHECK(text() == "abc");
  in.BackUp(2);
  CHECK(in.ByteCount() == 1);
  REQUIRE(in.Next(&data, &size));
  CHECK(text() == "bc");  // what was given back, then the next slice (the empty one skipped)
  REQUIRE(in.Next(&data, &size));
  CHECK(text() == "de");
  CHECK(in.ByteCount() == 5);
  CHECK(in.Skip(2));  // "fg", inside the last slice
  CHECK(in.ByteCount() == 7);
  REQUIRE(in.Next(&data, &size));
  CHECK(text() == "hij");
  in.BackUp(3);
  CHECK(in.Skip(1));
  CHECK(in.ByteCount() == 8);
  CHECK_FALSE(in.Skip(5));  // past the end
  CHECK_FALSE(in.Next(&data, &size));
  CHECK(in.ByteCount() == 10);

  slices_stream again(r.get()->data.raw.slice_buffer);
  CHECK(again.Skip(4));  // across the first slice and the empty one, into "de"
  REQUIRE(again.Next(&data, &size));
  CHECK(text() == "e");
}

TEST_CASE("an empty message parses as the default message, with no slice or one empty one") {
  const Msg empty_one = parse_message<Msg>(received(""));
  CHECK(empty_one.text().empty());
  CHECK(empty_one.n() == 0);
  grpc_byte_buffer* none = grpc_raw_byte_buffer_create(nullptr, 0);
  const received_message no_slices(none);
  CHECK(parse_message<Msg>(no_slices).n() == 0);
}

TEST_CASE("bytes that are not the message, or no bytes at all, are INVALID_ARGUMENT") {
  const std::string garbage("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
  for (const auto& cuts : {std::vector<std::size_t>{}, std::vector<std::size_t>{3, 7}}) {
    try {
      (void)parse_message<Msg>(received(garbage, cuts));
      FAIL("garbage parsed");
    } catch (const status_error& e) {
      CHECK(e.code() == ::grpc::StatusCode::INVALID_ARGUMENT);
      CHECK(e.message() == "baton: the request is not a valid baton.test.Msg");
    }
  }
  const received_message nothing;
  CHECK_THROWS_AS((void)parse_message<Msg>(nothing), status_error);
  CHECK_FALSE(to_message_bytes(nothing).buffer().Valid());
}

TEST_CASE("a buffer marked compressed is refused, never inflated by grpc++'s reader") {
  // The bytes are a valid message: only the mark makes them unreadable here.
  const received_message marked(received(sample().SerializeAsString(), {5}, GRPC_COMPRESS_GZIP));
  Msg m;
  CHECK_FALSE(parse_proto(marked, m));
  CHECK_FALSE(to_message_bytes(marked).buffer().Valid());
  const received_message one_slice(
      received(sample().SerializeAsString(), {}, GRPC_COMPRESS_DEFLATE));
  CHECK_FALSE(parse_proto(one_slice, m));
}

TEST_CASE("a type with SerializationTraits of its own reads the same bytes as a ByteBuffer") {
  const std::string bytes = sample().SerializeAsString();
  const received_message r = received(bytes, {2, 9, 30});
  CHECK(parse_message<raw_text>(r).bytes == bytes);
  ::grpc::ByteBuffer whole = std::move(to_message_bytes(r).buffer());
  CHECK(bytes_of(whole) == bytes);
  // The ByteBuffers hold references of their own: the received buffer still reads whole.
  CHECK(parse_message<Msg>(r).n() == sample().n());
}

TEST_CASE("a received message moves without copying and frees its buffer once") {
  received_message a = received(sample().SerializeAsString());
  const grpc_byte_buffer* held = a.get();
  received_message b(std::move(a));
  CHECK(a.get() == nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
  CHECK(b.get() == held);
  received_message c = received("");
  c = std::move(b);  // c's old buffer goes with b (ASan's leak check holds the test to it)
  CHECK(c.get() == held);
  CHECK(parse_message<Msg>(c).n() == sample().n());
}
