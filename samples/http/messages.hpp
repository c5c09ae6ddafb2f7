// SPDX-License-Identifier: BSL-1.0
// The HTTP message types of the service and helpers that build its responses.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/value.hpp>
#include <boost/url/url_view.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace http_service {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

/// A response with a body (Content-Type and Content-Length set). A JSON body is valid UTF-8
/// whatever its strings held: Boost.JSON writes a string's bytes as they are, so any byte that
/// is not part of valid UTF-8 (a note stored before notes were checked) becomes U+FFFD.
response text_response(http::status status, std::string body);
response json_response(http::status status, const json::value& body);
/// `{"error": message, "status": n, "request_id": ...}` with the current request id.
response error_response(http::status status, std::string_view message);

/// The request target, parsed with Boost.URL: origin-form (`/path?query`), or absolute-form
/// (`http://host/path?query`, RFC 9112 §3.2.2), whose host is then ignored.
struct target_parts {
  std::string path;           // percent-decoded and valid UTF-8; "/" when the target has none
  boost::urls::url_view url;  // views the target's bytes: valid as long as the request is
};
/// nullopt when the target is neither form, or its path is not valid UTF-8 once decoded.
std::optional<target_parts> parse_target(std::string_view target);

/// The percent-decoded value of the query's first parameter `name` ("" for `?name`), nullopt
/// when absent.
std::optional<std::string> query_param(const boost::urls::url_view& url, std::string_view name);

/// A request the service must refuse from its header alone: the status, why, and that the
/// connection then closes (its framing cannot be trusted).
struct framing_error {
  http::status status;
  std::string why;
};
/// The RFC 9112 rules the parser leaves to the server, checked once the header is read and
/// before any body byte: Host (exactly one in HTTP/1.1, at most one in 1.0, a valid
/// host[:port] or empty), Transfer-Encoding (not in HTTP/1.0, not with Content-Length, chunked
/// exactly once and last: else 400; another coding: 501), and the target (parse_target()).
std::optional<framing_error> check_framing(const request& req);

/// Whether s is valid UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF).
bool valid_utf8(std::string_view s);
/// s with every byte that is not part of valid UTF-8 replaced by U+FFFD.
std::string to_valid_utf8(std::string_view s);
/// Valid UTF-8 without control characters other than tab, LF and CR: what a note may hold.
bool plain_text(std::string_view s);

/// A non-negative integer, nullopt when s is not one (or does not fit).
std::optional<long long> to_number(std::string_view s);

/// serialize() of a JSON value, newline-terminated, and valid UTF-8 (see json_response).
std::string to_json_text(const json::value& v);

}  // namespace http_service
