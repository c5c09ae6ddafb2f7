// SPDX-License-Identifier: BSL-1.0
// For the gRPC wire tests: a hand-written HTTP/2 client that sends what no gRPC client would
// (a message cut short, a length prefix of 4 GiB, a compressed flag over plain bytes, frames
// of one byte, bytes that are not HTTP/2) and reads the server's frames back; accept() plays a
// server as hostile for the channel's tests.
//
// It speaks just enough of RFC 9113: the client preface and an empty SETTINGS; HEADERS as HPACK
// literals without indexing (RFC 7541 §6.2.2, no Huffman), so no header table is kept; DATA;
// the ACKs the server's SETTINGS and PING ask for; and, for pump(), the server's flow-control
// windows (its initial window and WINDOW_UPDATEs), so a flood stays within what HTTP/2 allows. It
// never decodes the server's headers: a stream's end is seen from frame types and flags
// (RST_STREAM, or END_STREAM on the trailers), which is all the tests ask of it. It runs on the
// current loop through use_task.
#pragma once

#include <baton/executor.hpp>
#include <baton/task.hpp>
#include <baton/use_task.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace baton_test::h2 {

enum frame_type : std::uint8_t {
  data = 0,
  headers = 1,
  rst_stream = 3,
  settings = 4,
  ping = 6,
  goaway = 7,
  window_update = 8,
  continuation = 9,
};
inline constexpr std::uint8_t end_stream = 0x1;  // DATA, HEADERS
inline constexpr std::uint8_t ack = 0x1;         // SETTINGS, PING
inline constexpr std::uint8_t end_headers = 0x4;

/// One frame: its 9-byte header (24-bit length, type, flags, 31-bit stream id) and payload.
inline std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream,
                         std::string_view payload) {
  std::string out;
  const auto n = static_cast<std::uint32_t>(payload.size());
  out += static_cast<char>((n >> 16) & 0xff);
  out += static_cast<char>((n >> 8) & 0xff);
  out += static_cast<char>(n & 0xff);
  out += static_cast<char>(type);
  out += static_cast<char>(flags);
  for (int shift = 24; shift >= 0; shift -= 8) {
    out += static_cast<char>((stream >> shift) & (shift == 24 ? 0x7f : 0xff));
  }
  out += payload;
  return out;
}

/// HPACK's integer with an N-bit prefix (RFC 7541 §5.1); the prefix's high bits are zero.
inline void hpack_integer(std::string& out, std::size_t value, int prefix_bits) {
  const std::size_t max_prefix = (std::size_t{1} << prefix_bits) - 1;
  if (value < max_prefix) {
    out += static_cast<char>(value);
    return;
  }
  out += static_cast<char>(max_prefix);
  value -= max_prefix;
  while (value >= 128) {
    out += static_cast<char>((value % 128) + 128);
    value /= 128;
  }
  out += static_cast<char>(value);
}

/// A header field as an HPACK literal without indexing, with a new name, neither string
/// Huffman-coded: the decoder keeps nothing of it.
inline std::string literal(std::string_view name, std::string_view value) {
  std::string out(1, '\0');
  hpack_integer(out, name.size(), 7);
  out += name;
  hpack_integer(out, value.size(), 7);
  out += value;
  return out;
}

using header_list = std::vector<std::pair<std::string, std::string>>;

/// The header block of a gRPC request for `path`, plus `extra` fields.
inline std::string request_headers(std::string_view path, const header_list& extra = {}) {
  std::string block = literal(":method", "POST") + literal(":scheme", "http") +
                      literal(":path", path) + literal(":authority", "localhost") +
                      literal("content-type", "application/grpc") + literal("te", "trailers");
  for (const auto& [name, value] : extra) block += literal(name, value);
  return block;
}

/// A gRPC length-prefixed message: a compressed flag, the length, the bytes. The length is
/// the bytes' own unless `declared` says otherwise (a message that claims more than it sends).
inline std::string grpc_message(std::string_view bytes, bool compressed = false,
                                std::int64_t declared = -1) {
  const auto n = static_cast<std::uint32_t>(declared < 0 ? bytes.size() : declared);
  std::string out(1, compressed ? '\1' : '\0');
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xff);
  out += bytes;
  return out;
}

/// How a stream (or the connection under it) ended, as this side saw it.
enum class stream_end {
  trailers,  // the peer's trailers (HEADERS with END_STREAM): a gRPC status
  reset,     // RST_STREAM for the stream
  goaway,    // the peer closed the connection with GOAWAY
  closed,    // the connection ended without either
};

inline const char* to_string(stream_end e) {
  switch (e) {
    case stream_end::trailers:
      return "trailers";
    case stream_end::reset:
      return "reset";
    case stream_end::goaway:
      return "goaway";
    case stream_end::closed:
      return "closed";
  }
  return "?";
}

/// A connection to 127.0.0.1:port: open() sends the client preface and an empty SETTINGS
/// (accept() plays the server instead); send() writes bytes as they are; until_end() reads
/// frames, answering SETTINGS and PING, until the stream ends or the connection does.
class connection {
 public:
  static baton::task<connection> open(std::uint16_t port) {
    connection c;
    co_await c.socket_.async_connect({boost::asio::ip::address_v4::loopback(), port},
                                     baton::use_task);
    co_await c.send(std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + frame(settings, 0, 0, ""));
    co_return c;
  }

  /// The server's side of a connection a client makes to `acceptor`: reads the client's
  /// preface, sends an empty SETTINGS. request() then waits for the client's first stream.
  static baton::task<connection> accept(boost::asio::ip::tcp::acceptor& acceptor) {
    connection c;
    co_await acceptor.async_accept(c.socket_, baton::use_task);
    const std::string_view preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const bool got = co_await c.buffer_at_least(preface.size());
    if (got && c.in_.starts_with(preface)) c.in_at_ = preface.size();
    co_await c.send(frame(settings, 0, 0, ""));
    co_return c;
  }

  /// Reads frames until the peer opens a stream (HEADERS); its id, or 0 if the connection ended.
  baton::task<std::uint32_t> request() {
    while (headers_stream_ == 0) {
      const std::optional<stream_end> end = co_await next_frame(0);
      if (end) break;
    }
    co_return headers_stream_;
  }

  /// A connection that sends nothing first (for bytes that are not even the preface).
  static baton::task<connection> open_bare(std::uint16_t port) {
    connection c;
    co_await c.socket_.async_connect({boost::asio::ip::address_v4::loopback(), port},
                                     baton::use_task);
    co_return c;
  }

  baton::task<> send(std::string bytes) {
    co_await boost::asio::async_write(socket_, boost::asio::buffer(bytes), baton::use_task);
  }

  /// Reads until `stream` ends, or the connection. data_seen() counts DATA bytes on it.
  baton::task<stream_end> until_end(std::uint32_t stream) {
    for (;;) {
      if (auto end = co_await next_frame(stream)) co_return *end;
    }
  }

  /// Sends `first` as DATA on `stream`, then DATA frames of filler bytes, as fast as the
  /// peer's flow-control windows let it, until the stream ends or `cap` bytes are sent in
  /// all (nullopt then). Frames carry `frame_bytes` each (the largest the peer takes unless
  /// told), written to the socket up to 64 KiB of frames at a time. sent() says how many went.
  baton::task<std::optional<stream_end>> pump(std::uint32_t stream, std::string first,
                                              std::size_t cap,
                                              std::size_t frame_bytes = max_frame) {
    const std::string filler(frame_bytes, 'x');
    std::string batch;
    for (;;) {
      while (sent_ < cap && conn_window_ > 0 && stream_window_ > 0) {
        const auto n = static_cast<std::size_t>(
            std::min<std::int64_t>({static_cast<std::int64_t>(frame_bytes), conn_window_,
                                    stream_window_, static_cast<std::int64_t>(cap - sent_)}));
        const std::string_view source = sent_ < first.size() ? first : filler;
        const std::size_t at = sent_ < first.size() ? sent_ : 0;
        const auto chunk = source.substr(at, n);
        batch += frame(data, 0, stream, chunk);
        sent_ += chunk.size();
        conn_window_ -= static_cast<std::int64_t>(chunk.size());
        stream_window_ -= static_cast<std::int64_t>(chunk.size());
        if (batch.size() >= 64 * 1024) {
          co_await send(std::move(batch));
          batch.clear();  // moved from: empty it for the next frames
        }
      }
      if (!batch.empty()) {
        co_await send(std::move(batch));
        batch.clear();
      }
      if (sent_ >= cap) co_return std::nullopt;
      if (auto end = co_await next_frame(stream)) co_return end;
    }
  }

  std::size_t sent() const { return sent_; }

  /// Reads frames until the server's SETTINGS has come and been acknowledged: from then on
  /// the server holds the client to the settings it announced.
  baton::task<> acknowledge_settings() {
    while (!settings_acknowledged_) {
      const std::optional<stream_end> end = co_await next_frame(0);
      if (end) break;  // the connection ended
    }
  }
  std::size_t data_seen() const { return data_seen_; }

 private:
  static constexpr std::size_t max_frame = 16384;  // SETTINGS_MAX_FRAME_SIZE's default

  connection() : socket_(baton::current_executor()) {}

  /// Reads one frame and acts on it: ACKs a SETTINGS or PING, follows the server's windows.
  /// Returns how `stream` ended when this frame ended it (or the connection).
  baton::task<std::optional<stream_end>> next_frame(std::uint32_t stream) {
    if (!co_await buffer_at_least(9)) co_return stream_end::closed;
    const auto* head = reinterpret_cast<const unsigned char*>(in_.data() + in_at_);
    const std::size_t length =
        (std::size_t{head[0]} << 16) | (std::size_t{head[1]} << 8) | std::size_t{head[2]};
    const std::uint8_t type = head[3];
    const std::uint8_t flags = head[4];
    const std::uint32_t id = big_endian_31(&head[5]);
    if (!co_await buffer_at_least(9 + length)) co_return stream_end::closed;
    const std::string payload = in_.substr(in_at_ + 9, length);
    in_at_ += 9 + length;
    const auto* bytes = reinterpret_cast<const unsigned char*>(payload.data());
    if (type == settings && (flags & ack) == 0) {
      for (std::size_t at = 0; at + 6 <= length; at += 6) {
        const unsigned id_of_setting = (unsigned{bytes[at]} << 8) | bytes[at + 1];
        if (id_of_setting == 4) {  // SETTINGS_INITIAL_WINDOW_SIZE: moves every stream's window
          const std::int64_t size = big_endian_31(&bytes[at + 2]);
          stream_window_ += size - initial_window_;
          initial_window_ = size;
        }
      }
      co_await send(frame(settings, ack, 0, ""));
      settings_acknowledged_ = true;
    }
    if (type == window_update && length == 4) {
      (id == 0 ? conn_window_ : stream_window_) += big_endian_31(bytes);
    }
    if (type == ping && (flags & ack) == 0) co_await send(frame(ping, ack, 0, payload));
    if (type == headers && headers_stream_ == 0) headers_stream_ = id;
    if (type == goaway) co_return stream_end::goaway;
    if (id != stream) co_return std::nullopt;
    if (type == data) data_seen_ += length;
    if (type == rst_stream) co_return stream_end::reset;
    if (type == headers && (flags & end_stream) != 0) co_return stream_end::trailers;
    co_return std::nullopt;
  }

  /// Reads until `in_` holds at least n bytes past in_at_, as much as the socket has each time
  /// (a frame at a time would cost two reads per frame); what was taken is dropped only then,
  /// so a buffer of many small frames is not moved once per frame. False when the connection
  /// ended first.
  baton::task<bool> buffer_at_least(std::size_t n) {
    constexpr std::size_t chunk = 64 * 1024;
    while (in_.size() - in_at_ < n) {
      in_.erase(0, in_at_);
      in_at_ = 0;
      const std::size_t had = in_.size();
      in_.resize(had + chunk);
      auto [ec, got] = co_await socket_.async_read_some(
          boost::asio::buffer(in_.data() + had, chunk), boost::asio::as_tuple(baton::use_task));
      in_.resize(had + (ec ? 0 : got));
      if (ec) co_return false;
    }
    co_return true;
  }

  static std::uint32_t big_endian_31(const unsigned char* p) {
    return ((std::uint32_t{p[0]} & 0x7f) << 24) | (std::uint32_t{p[1]} << 16) |
           (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
  }

  boost::asio::ip::tcp::socket socket_;
  std::string in_;         // bytes read from the peer; those from in_at_ on are not yet taken
  std::size_t in_at_ = 0;  // where the next frame starts in in_
  std::size_t data_seen_ = 0;
  std::size_t sent_ = 0;                 // DATA bytes pump() sent
  std::int64_t conn_window_ = 65535;     // what the connection may still send
  std::int64_t stream_window_ = 65535;   // what pump()'s one stream may still send
  std::int64_t initial_window_ = 65535;  // the server's SETTINGS_INITIAL_WINDOW_SIZE
  bool settings_acknowledged_ = false;
  std::uint32_t headers_stream_ = 0;  // the first stream the peer opened (request())
};

}  // namespace baton_test::h2
