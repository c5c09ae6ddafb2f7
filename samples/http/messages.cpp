// SPDX-License-Identifier: BSL-1.0
// Response builders and small parsing helpers.
#include "messages.hpp"

#include "context.hpp"

#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/params_view.hpp>

#include <algorithm>
#include <charconv>
#include <vector>

namespace http_service {

namespace urls = boost::urls;

response text_response(http::status status, std::string body) {
  response res{status, 11};
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::move(body);
  return res;
}

std::string to_json_text(const json::value& v) {
  std::string s = json::serialize(v);
  if (!valid_utf8(s)) s = to_valid_utf8(s);  // bytes outside UTF-8 sit in strings only
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

std::optional<target_parts> parse_target(std::string_view target) {
  const bool origin_form = target.starts_with('/');
  auto parsed = origin_form ? urls::parse_origin_form(target) : urls::parse_absolute_uri(target);
  if (!parsed) return std::nullopt;
  if (!origin_form && parsed->scheme_id() != urls::scheme::http &&
      parsed->scheme_id() != urls::scheme::https) {
    return std::nullopt;
  }
  std::string path = parsed->path();
  if (path.empty()) path.push_back('/');
  if (!valid_utf8(path)) return std::nullopt;
  return target_parts{std::move(path), *parsed};
}

std::optional<std::string> query_param(const urls::url_view& url, std::string_view name) {
  const urls::params_view params = url.params();
  const auto it = params.find(name);
  if (it == params.end()) return std::nullopt;
  const urls::param p = *it;
  return p.has_value ? std::move(p.value) : std::string();
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// The transfer codings of every Transfer-Encoding field, in order, without parameters.
std::vector<std::string_view> transfer_codings(const request& req) {
  std::vector<std::string_view> codings;
  const auto [first, last] = req.equal_range(http::field::transfer_encoding);
  for (auto f = first; f != last; ++f) {
    std::string_view list(f->value().data(), f->value().size());
    while (!list.empty()) {
      const auto comma = list.find(',');
      std::string_view item = list.substr(0, comma);
      item = trim(item.substr(0, item.find(';')));
      if (!item.empty()) codings.push_back(item);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return codings;
}

framing_error bad(std::string why) { return {http::status::bad_request, std::move(why)}; }

}  // namespace

std::optional<framing_error> check_framing(const request& req) {
  const bool http_1_0 = req.version() < 11;
  const std::size_t hosts = req.count(http::field::host);
  if (hosts > 1) return bad("more than one Host field");
  if (hosts == 0 && !http_1_0) return bad("an HTTP/1.1 request needs a Host field");
  if (hosts == 1) {
    const auto host = req[http::field::host];
    if (!host.empty()) {
      const auto authority = urls::parse_authority(std::string_view(host.data(), host.size()));
      if (!authority || authority->has_userinfo()) return bad("Host: not host[:port]");
    }
  }

  if (req.count(http::field::transfer_encoding) > 0) {
    // RFC 9112 §6.1: not in HTTP/1.0; §6.3: with Content-Length it smells of smuggling, and
    // unless chunked is the final coding the body's end cannot be found. Each: 400, close.
    if (http_1_0) return bad("Transfer-Encoding in an HTTP/1.0 request");
    if (req.count(http::field::content_length) > 0) {
      return bad("both Transfer-Encoding and Content-Length");
    }
    const std::vector<std::string_view> codings = transfer_codings(req);
    if (codings.empty() || !beast::iequals(codings.back(), "chunked")) {
      return bad("Transfer-Encoding: chunked must be the final coding");
    }
    const auto chunked = std::count_if(codings.begin(), codings.end(), [](std::string_view c) {
      return beast::iequals(c, "chunked");
    });
    if (chunked > 1) return bad("Transfer-Encoding: chunked twice");
    if (codings.size() > 1) {  // §6.1: a coding the server does not know is a 501
      return framing_error{http::status::not_implemented,
                           "Transfer-Encoding: only chunked is supported"};
    }
  }

  if (!parse_target(std::string_view(req.target().data(), req.target().size()))) {
    return bad("request target: not /path?query or http://host/path?query in UTF-8");
  }
  return std::nullopt;
}

namespace {

/// The length (1 to 4) of the valid UTF-8 sequence at s[i], 0 when none starts there.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char lead = at(0);
  if (lead < 0x80) return 1;
  std::size_t n = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xbf;  // the range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    n = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    n = 3;
    low = lead == 0xe0 ? 0xa0 : low;    // overlong
    high = lead == 0xed ? 0x9f : high;  // surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    n = 4;
    low = lead == 0xf0 ? 0x90 : low;    // overlong
    high = lead == 0xf4 ? 0x8f : high;  // past U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - i < n || at(1) < low || at(1) > high) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (at(k) < 0x80 || at(k) > 0xbf) return 0;
  }
  return n;
}

}  // namespace

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_length(s, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";  // U+FFFD
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

bool plain_text(std::string_view s) {
  return valid_utf8(s) && std::none_of(s.begin(), s.end(), [](char c) {
           const auto b = static_cast<unsigned char>(c);
           return (b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7f;
         });
}

std::optional<long long> to_number(std::string_view s) {
  long long v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

}  // namespace http_service
