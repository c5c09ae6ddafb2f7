// SPDX-License-Identifier: BSL-1.0
// The HTTP message types of the service and helpers that build its responses.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace http_service {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

/// A response with a body (Content-Type and Content-Length set).
response text_response(http::status status, std::string body);
response json_response(http::status status, const json::value& body);
/// `{"error": message, "status": n, "request_id": ...}` with the current request id.
response error_response(http::status status, std::string_view message);

/// The target split into path and query string (without the '?').
struct target_parts {
  std::string_view path;
  std::string_view query;
};
target_parts split_target(std::string_view target);

/// The value of `name` in a query string `a=1&b=2` (no percent-decoding: the sample's
/// parameters are numbers), nullopt when absent.
std::optional<std::string_view> query_param(std::string_view query, std::string_view name);
/// A non-negative integer, nullopt when s is not one (or does not fit).
std::optional<long long> to_number(std::string_view s);

/// serialize() of a JSON value, newline-terminated.
std::string to_json_text(const json::value& v);

}  // namespace http_service
