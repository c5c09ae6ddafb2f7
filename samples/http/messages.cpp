// SPDX-License-Identifier: BSL-1.0
// Response builders and small parsing helpers.
#include "messages.hpp"

#include "context.hpp"

#include <boost/json/serialize.hpp>

#include <charconv>

namespace http_service {

response text_response(http::status status, std::string body) {
  response res{status, 11};
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::move(body);
  return res;
}

std::string to_json_text(const json::value& v) {
  std::string s = json::serialize(v);
  s.push_back('\n');
  return s;
}

response json_response(http::status status, const json::value& body) {
  response res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.body() = to_json_text(body);
  return res;
}

response error_response(http::status status, std::string_view message) {
  json::object o;
  o["error"] = message;
  o["status"] = static_cast<unsigned>(status);
  o["request_id"] = current_request_id.get("");
  return json_response(status, o);
}

target_parts split_target(std::string_view target) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

std::optional<std::string_view> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    const auto eq = item.find('=');
    if (item.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::optional<long long> to_number(std::string_view s) {
  long long v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

}  // namespace http_service
