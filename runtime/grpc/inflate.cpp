// SPDX-License-Identifier: BSL-1.0
// inflate_message: zlib's inflate, fed gRPC's slices and writing into slices of its own, with
// room for one byte more than the limit so that a message past it is told from one at it.
#include "inflate.hpp"

#include <grpc/slice.h>
#include <grpcpp/support/slice.h>

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <new>
#include <vector>

namespace baton::grpc::detail {

namespace {

constexpr std::size_t chunk_bytes = 64 * 1024;

/// zlib's inflate state, ended with the object.
class zlib_inflater {
 public:
  /// window_bits as inflateInit2 takes them; false from ok() when zlib refuses them.
  explicit zlib_inflater(int window_bits) {
    const int rc = inflateInit2(&z_, window_bits);
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    open_ = rc == Z_OK;
  }
  zlib_inflater(const zlib_inflater&) = delete;
  zlib_inflater& operator=(const zlib_inflater&) = delete;
  ~zlib_inflater() {
    if (open_) inflateEnd(&z_);
  }
  bool ok() const noexcept { return open_; }
  z_stream& stream() noexcept { return z_; }

 private:
  z_stream z_{};
  bool open_ = false;
};

/// The output: slices of at most chunk_bytes, the last one written `used` bytes into.
/// grpc_slice_malloc_large never inlines the bytes into the slice struct, so the pointer to
/// them stays valid while the slice is moved around.
class output_slices {
 public:
  /// Room for at most `room` (> 0) more bytes: where they go, and how many fit.
  std::pair<std::uint8_t*, std::size_t> space(std::size_t room) {
    if (slices_.empty() || used_ == slices_.back().size()) {
      grpc_slice s = grpc_slice_malloc_large(std::min(chunk_bytes, room));
      at_ = GRPC_SLICE_START_PTR(s);
      slices_.emplace_back(s, ::grpc::Slice::STEAL_REF);
      used_ = 0;
    }
    return {at_ + used_, slices_.back().size() - used_};
  }
  void wrote(std::size_t n) noexcept { used_ += n; }

  /// The bytes written, as a buffer of core's (which takes its own reference to each slice).
  received_message take() {
    if (!slices_.empty() && used_ == 0) {
      slices_.pop_back();  // made for output that did not come (the stream's trailer)
    } else if (!slices_.empty() && used_ < slices_.back().size()) {
      slices_.back() = slices_.back().sub(0, used_);
    }
    std::vector<grpc_slice> refs;  // c_slice() takes a reference for the caller
    refs.reserve(slices_.size());
    for (const ::grpc::Slice& s : slices_) refs.push_back(s.c_slice());
    received_message out(grpc_raw_byte_buffer_create(refs.data(), refs.size()));
    for (const grpc_slice& s : refs) grpc_slice_unref(s);  // the buffer took its own
    return out;
  }

 private:
  std::vector<::grpc::Slice> slices_;
  std::uint8_t* at_ = nullptr;  // the last slice's bytes
  std::size_t used_ = 0;
};

}  // namespace

inflated inflate_message(const grpc_byte_buffer& in, std::size_t limit, received_message& out) {
  if (in.type != GRPC_BB_RAW) return inflated::corrupt;
  int window_bits = 0;
  switch (in.data.raw.compression) {
    case GRPC_COMPRESS_GZIP:
      window_bits = 15 + 16;  // the gzip wrapper (RFC 1952)
      break;
    case GRPC_COMPRESS_DEFLATE:
      window_bits = 15;  // the zlib wrapper (RFC 1950), what gRPC calls deflate
      break;
    default:
      return inflated::corrupt;
  }
  zlib_inflater inflater(window_bits);
  if (!inflater.ok()) return inflated::corrupt;
  z_stream& z = inflater.stream();
  output_slices output;
  std::size_t total = 0;  // bytes inflated so far
  const grpc_slice_buffer& input = in.data.raw.slice_buffer;
  std::size_t slice = 0;               // the next input slice to feed
  const std::uint8_t* next = nullptr;  // the input not yet fed, `left` bytes of it
  std::size_t left = 0;
  for (;;) {
    while (left == 0 && slice < input.count) {
      next = GRPC_SLICE_START_PTR(input.slices[slice]);
      left = GRPC_SLICE_LENGTH(input.slices[slice]);
      ++slice;
    }
    // With the input all fed, zlib may still hold output (a match it had no room to copy), so
    // it is called until it ends the stream, or says it cannot go on (Z_BUF_ERROR: cut short).
    const auto [at, room] = output.space(limit + 1 - total);
    // zlib counts in uInt: a longer slice (none is) would be fed in pieces.
    const auto in_now =
        static_cast<uInt>(std::min<std::size_t>(left, std::numeric_limits<uInt>::max()));
    const auto out_now =
        static_cast<uInt>(std::min<std::size_t>(room, std::numeric_limits<uInt>::max()));
    z.next_in = const_cast<Bytef*>(next);  // zlib's API is not const; it only reads input
    z.avail_in = in_now;
    z.next_out = at;
    z.avail_out = out_now;
    const int rc = inflate(&z, Z_NO_FLUSH);
    const std::size_t consumed = in_now - z.avail_in;
    const std::size_t produced = out_now - z.avail_out;
    next += consumed;
    left -= consumed;
    output.wrote(produced);
    total += produced;
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    // One byte past the limit has room; filling it means the message is too big.
    if (total > limit) return inflated::over_limit;
    if (rc == Z_STREAM_END) break;
    // Bad data (Z_DATA_ERROR), or no progress possible (Z_BUF_ERROR: the input stops short).
    if (rc != Z_OK) return inflated::corrupt;
  }
  // Bytes after the stream's end: not one whole stream.
  if (left != 0) return inflated::corrupt;
  for (; slice < input.count; ++slice) {
    if (GRPC_SLICE_LENGTH(input.slices[slice]) != 0) return inflated::corrupt;
  }
  out = output.take();
  return inflated::whole;
}

}  // namespace baton::grpc::detail
