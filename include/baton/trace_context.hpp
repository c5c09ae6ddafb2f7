// SPDX-License-Identifier: BSL-1.0
// W3C Trace Context (traceparent, tracestate) and W3C Baggage, carried in context vars.
#pragma once

// Contract:
//   trace_parent   the traceparent header (Trace Context Level 1): parse() accepts version 00
//                  exactly (`00-<32 hex>-<16 hex>-<2 hex>`, lowercase, non-zero ids) and later
//                  versions by the forward-compatibility rules; ff is never valid. It keeps
//                  only the sampled flag (Level 1 reserves the other bits, to be sent as 0).
//                  to_string() always writes version 00. generate() makes random ids; child()
//                  keeps the trace id and flags and draws a new parent id.
//   trace_state    the tracestate list: at most 32 members, keys unique. parse() returns nullopt
//                  when any member is invalid (the whole header is discarded, as the spec
//                  requires). put() validates, puts the member first, drops the last one when
//                  the list would exceed 32; std::invalid_argument on a bad key or value.
//   baggage        the baggage header: values are percent-decoded on parse, percent-encoded by
//                  to_string(). parse() drops invalid members one by one (the spec allows it)
//                  and keeps the longest prefix within 64 members and 8192 bytes. set() returns
//                  false instead of exceeding those limits; std::invalid_argument on a bad key
//                  or property list.
//   current_trace() / current_trace_state() / current_baggage()
//                  the values in the current context (nullopt / empty when unset).
//   extract(get)   reads traceparent, tracestate and baggage through `get` and sets all three
//                  vars in the current context, absent or invalid headers as nullopt / empty;
//                  tracestate is read only when traceparent is valid. Returns the tokens.
//   inject(set)    writes the current values: traceparent as-is, tracestate when there is a
//                  traceparent and the state is not empty, baggage when not empty.
//   start_span()   sets a child of the current trace_parent (a fresh one when there is none)
//                  in the current context; returns the token that undoes it.
// Header names: extract/inject ask for and write lowercase names; the map overloads match names
// in any case, treat two traceparent fields as none, and join repeated tracestate and baggage
// fields with ','. A getter must match names in any case itself, and return repeated
// tracestate or baggage fields joined with ','.
// Thread-safety: trace_parent, trace_state and baggage are plain values (like std::string).
// The free functions act on the calling thread's current context only; generate() and
// child() may be called on any thread at once.
//
// Example:
//   auto tokens = baton::extract(incoming_headers);        // e.g. a std::map<string, string>
//   auto span = baton::start_span();                       // this service's own span
//   std::map<std::string, std::string> outgoing;
//   baton::inject(outgoing);                               // traceparent = our span's id
//   baton::trace_parent_var().reset(span);
//   tokens.reset();

#include <baton/context_var.hpp>
#include <baton/token.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace baton {

/// The traceparent header: which trace, which caller span, and the trace flags.
struct trace_parent {
  static constexpr std::uint8_t sampled_flag = 0x01;

  std::array<std::uint8_t, 16> trace_id{};
  std::array<std::uint8_t, 8> parent_id{};
  std::uint8_t flags = 0;

  bool sampled() const noexcept { return (flags & sampled_flag) != 0; }
  /// Both ids non-zero: what parse() guarantees and the spec requires.
  bool valid() const noexcept;

  /// The header value, OWS around it allowed; nullopt if the spec says to ignore it.
  static std::optional<trace_parent> parse(std::string_view header);
  /// `00-<trace-id>-<parent-id>-<flags>`, lowercase hex, 55 characters.
  std::string to_string() const;
  std::string trace_id_hex() const;
  std::string parent_id_hex() const;

  /// A new trace: random non-zero ids and the given flags (0: not sampled).
  static trace_parent generate(std::uint8_t flags = 0);
  /// The same trace id and flags, a new random non-zero parent id.
  trace_parent child() const;

  friend bool operator==(const trace_parent&, const trace_parent&) = default;
};

/// The tracestate header: vendor key/value pairs, the most recently updated first.
class trace_state {
 public:
  static constexpr std::size_t max_members = 32;

  struct member {
    std::string key;
    std::string value;
    friend bool operator==(const member&, const member&) = default;
  };

  /// The combined header value; empty members and OWS around members are ignored. nullopt
  /// when any member is invalid, a key repeats, or there are more than 32 members.
  static std::optional<trace_state> parse(std::string_view header);
  static bool valid_key(std::string_view key) noexcept;
  static bool valid_value(std::string_view value) noexcept;

  std::optional<std::string> get(std::string_view key) const;
  /// Adds or updates key, moving it to the front; drops the last member beyond 32.
  /// std::invalid_argument (nothing changed) when the key or value is invalid.
  void put(std::string_view key, std::string_view value);
  /// Removes key; false if it was not there.
  bool erase(std::string_view key);

  std::size_t size() const noexcept { return members_.size(); }
  bool empty() const noexcept { return members_.empty(); }
  const std::vector<member>& members() const noexcept { return members_; }
  /// `k1=v1,k2=v2`, no optional whitespace; empty for an empty list.
  std::string to_string() const;

  friend bool operator==(const trace_state&, const trace_state&) = default;

 private:
  std::vector<member> members_;
};

/// The baggage header: application key/value pairs with optional properties, in order.
class baggage {
 public:
  static constexpr std::size_t max_members = 64;
  static constexpr std::size_t max_bytes = 8192;

  struct member {
    std::string key;
    std::string value;       // decoded
    std::string properties;  // as sent, OWS removed: `k1=v1;k2` (empty: none)
    friend bool operator==(const member&, const member&) = default;
  };

  /// The combined header value. Invalid members (bad syntax, bad percent-encoding) are
  /// dropped; a repeated key updates the first one in place; members after the limits are hit
  /// are dropped. Undecodable UTF-8 in a value becomes U+FFFD.
  static baggage parse(std::string_view header);
  /// An RFC 7230 token.
  static bool valid_key(std::string_view key) noexcept;

  std::optional<std::string> get(std::string_view key) const;
  const member* find(std::string_view key) const noexcept;
  /// Adds key at the end or updates it in place. false (nothing changed) when the result
  /// would exceed 64 members or 8192 bytes; std::invalid_argument on a key that is not a
  /// token or properties that are not `;`-separated `key` / `key=value` items.
  bool set(std::string_view key, std::string_view value, std::string_view properties = {});
  bool erase(std::string_view key);

  std::size_t size() const noexcept { return members_.size(); }
  bool empty() const noexcept { return members_.empty(); }
  const std::vector<member>& members() const noexcept { return members_; }
  /// `k1=v1;p,k2=v2`, values percent-encoded where the grammar requires it.
  std::string to_string() const;

  friend bool operator==(const baggage&, const baggage&) = default;

 private:
  /// Adds or updates m (already valid) unless the limits would be exceeded.
  bool put(member m);
  /// put() for a member with a value that needs no decoding and no properties, the common
  /// case of parse(): its strings are made straight from the header's bytes, and its encoded
  /// size is its text's.
  bool put_plain(std::string_view key, std::string_view value);
  /// find() for a member put() and put_plain() may change.
  member* find_member(std::string_view key) noexcept;
  /// to_string()'s size once a member of `size` encoded bytes replaces *old (nullptr: is
  /// appended); nullopt when that would exceed max_members or max_bytes.
  std::optional<std::size_t> bytes_with(const member* old, std::size_t size) const noexcept;
  std::vector<member> members_;
  // to_string().size(), kept by put(), put_plain() and erase(): what bytes_with() checks
  // against max_bytes without measuring every member again (parse() puts each member of a
  // header in turn).
  std::size_t encoded_bytes_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The ambient values.

/// The vars themselves, for context::get(), set() and reset(). Process-wide, never destroyed.
context_var<std::optional<trace_parent>>& trace_parent_var();
context_var<trace_state>& trace_state_var();
context_var<baggage>& baggage_var();

std::optional<trace_parent> current_trace();
trace_state current_trace_state();
baggage current_baggage();

/// What extract() set; reset() puts all three vars back as they were before it.
struct trace_tokens {
  token<std::optional<trace_parent>> parent_token;
  token<trace_state> state_token;
  token<baggage> baggage_token;

  /// Resets the three vars, in reverse order; context_error as context_var::reset.
  void reset() const;
};

/// Returns a header's value by lowercase name, nullopt when absent.
using header_getter = std::function<std::optional<std::string_view>(std::string_view name)>;
/// Stores a header (lowercase name).
using header_setter = std::function<void(std::string_view name, std::string value)>;

trace_tokens extract(const header_getter& get);
void inject(const header_setter& set);
/// Sets a child of current_trace() (or a new trace) in the current context.
token<std::optional<trace_parent>> start_span();

namespace detail {

/// The three headers of one carrier, collected in any case (used by the carrier overloads).
struct trace_headers {
  std::optional<std::string> traceparent;
  std::size_t traceparent_count = 0;
  std::optional<std::string> tracestate;
  std::optional<std::string> baggage;

  /// Takes name/value if name is one of the three headers (any case).
  void add(std::string_view name, std::string_view value);
};

/// The three headers as views into a carrier that outlives the call, for a carrier that sends
/// each header in one field (trace_headers joins repeated tracestate/baggage fields).
struct trace_header_views {
  std::optional<std::string_view> traceparent;
  std::size_t traceparent_count = 0;
  std::optional<std::string_view> tracestate;
  std::optional<std::string_view> baggage;
};

/// What extract_views() sets, parsed from the headers by its rules.
struct trace_values {
  std::optional<trace_parent> parent;
  trace_state state;
  baggage bag;
};
trace_values parse_views(const trace_header_views& h, bool new_span);

trace_tokens extract_headers(const trace_headers& h);
/// extract_headers()'s rules on views. With new_span, the trace var is set once, to a child of
/// the incoming parent (a new trace without one): what extract() and then start_span() leave,
/// for one set instead of two; parent_token then undoes that set.
trace_tokens extract_views(const trace_header_views& h, bool new_span = false);
/// The current values as header values (unset ones absent).
trace_headers current_headers();
bool is_trace_header(std::string_view name) noexcept;

}  // namespace detail

/// Any iterable of name/value pairs: std::map, std::unordered_map, a vector of pairs, ...
template <class Carrier>
concept header_range = requires(const Carrier& c) {
  { c.begin()->first } -> std::convertible_to<std::string_view>;
  { c.begin()->second } -> std::convertible_to<std::string_view>;
  c.end();
};

/// A map-like carrier that inject() can write: std::map<std::string, std::string> and kin.
template <class Carrier>
concept header_map = header_range<Carrier> && requires(Carrier& c, std::string s) {
  c.insert_or_assign(s, s);
  { c.erase(c.begin()) } -> std::same_as<typename Carrier::iterator>;
};

/// extract() from a carrier; names match in any case.
template <header_range Carrier>
trace_tokens extract(const Carrier& carrier) {
  detail::trace_headers h;
  for (const auto& field : carrier) h.add(field.first, field.second);
  return detail::extract_headers(h);
}

/// inject() into a map-like carrier, replacing the three headers in whatever case they were.
template <header_map Carrier>
void inject(Carrier& carrier) {
  detail::trace_headers h = detail::current_headers();
  for (auto it = carrier.begin(); it != carrier.end();) {
    if (detail::is_trace_header(it->first)) {
      it = carrier.erase(it);
    } else {
      ++it;
    }
  }
  if (h.traceparent) carrier.insert_or_assign(std::string("traceparent"), *h.traceparent);
  if (h.tracestate) carrier.insert_or_assign(std::string("tracestate"), *h.tracestate);
  if (h.baggage) carrier.insert_or_assign(std::string("baggage"), *h.baggage);
}

}  // namespace baton
