// SPDX-License-Identifier: BSL-1.0
// For the gRPC tests of compressed messages: gzip, a compression bomb (many zeros, gzipped, made
// a block at a time so the test never holds them inflated) and the process's peak RSS, which
// says whether anyone inflated it whole. Needs zlib (the test's meson entry adds it).
#pragma once

#include <doctest/doctest.h>

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <fstream>
#include <string>

namespace baton_test {

/// `n` zero bytes, gzipped: about n / 1000 bytes.
inline std::string gzip_of_zeros(std::size_t n) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string zeros(std::size_t{1} << 20, '\0');
  std::string block(std::size_t{64} << 10, '\0');
  std::string out;
  for (std::size_t left = n;;) {
    const std::size_t now = std::min(left, zeros.size());
    left -= now;
    z.next_in = reinterpret_cast<Bytef*>(zeros.data());
    z.avail_in = static_cast<uInt>(now);
    const int flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
    int rc = Z_OK;
    do {
      z.next_out = reinterpret_cast<Bytef*>(block.data());
      z.avail_out = static_cast<uInt>(block.size());
      rc = deflate(&z, flush);
      out.append(block.data(), block.size() - z.avail_out);
    } while (z.avail_out == 0);
    if (left == 0) {
      REQUIRE(rc == Z_STREAM_END);
      break;
    }
  }
  deflateEnd(&z);
  return out;
}

/// `bytes`, deflated in gzip's wrapper.
inline std::string gzip(const std::string& bytes) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) ==
          Z_OK);
  std::string out(deflateBound(&z, bytes.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  return out;
}

/// The process's peak resident set (VmHWM), in bytes; 0 when /proc does not say.
inline std::size_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoul(line.substr(6)) * 1024;
  }
  return 0;
}

/// Resets the peak to the current RSS (Linux's clear_refs); false when this kernel cannot, or
/// does not report the peak.
inline bool reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.close();
  return static_cast<bool>(clear) && peak_rss_bytes() != 0;
}

}  // namespace baton_test
