// SPDX-License-Identifier: BSL-1.0
// W3C Trace Context and Baggage: parsing, formatting, random ids, and the three context vars.
//
// Where the rules come from (section names of the W3C documents):
//   traceparent   Trace Context Level 1, "traceparent Header" and "Versioning of traceparent".
//   tracestate    Trace Context Level 1, "tracestate Header" (the Level 1 key grammar: simple
//                 keys and multi-tenant `tenant@system` keys).
//   baggage       W3C Baggage, "Header Content", "Limits" and "Mutating baggage".

#include <baton/trace_context.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>
#include <utility>

namespace baton {

namespace {

// --- characters ------------------------------------------------------------------------------

constexpr char hex_digits[] = "0123456789abcdef";

// Every header parse on a call's path (gRPC's fill, the HTTP edge) tests each byte against
// the grammars' character sets. Each set is a bit in one table of 256 entries, so each test is
// a load and a mask. classes_of() spells out each set as its grammar defines it, and the
// table is built from it at compile time.
enum char_class : std::uint8_t {
  tracestate_kc = 1 << 0,     // tracestate keychar: lcalpha DIGIT _ - * /
  tchar = 1 << 1,             // RFC 7230 tchar: the baggage keys and property keys
  baggage_oct = 1 << 2,       // baggage-octet: printable US-ASCII except SP DQUOTE , ; backslash
  tracestate_vc = 1 << 3,     // tracestate value chr: %x20-2B / %x2D-3C / %x3E-7E
  tracestate_kc_at = 1 << 4,  // a keychar or '@': every byte a tracestate key may hold
  baggage_plain = 1 << 5,     // a baggage-octet other than '%': a value byte sent as it is
};

constexpr std::uint8_t classes_of(unsigned char c) noexcept {
  const bool digit = c >= '0' && c <= '9';
  const bool lower = c >= 'a' && c <= 'z';
  const bool upper = c >= 'A' && c <= 'Z';
  std::uint8_t k = 0;
  if (lower || digit || c == '_' || c == '-' || c == '*' || c == '/') k |= tracestate_kc;
  if (digit || lower || upper ||
      std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos) {
    k |= tchar;
  }
  if (c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
      (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e)) {
    k |= baggage_oct;
  }
  if (c >= 0x20 && c <= 0x7e && c != ',' && c != '=') k |= tracestate_vc;
  if ((k & tracestate_kc) != 0 || c == '@') k |= tracestate_kc_at;
  if ((k & baggage_oct) != 0 && c != '%') k |= baggage_plain;
  return k;
}

constexpr std::array<std::uint8_t, 256> char_classes = [] {
  std::array<std::uint8_t, 256> t{};
  for (unsigned c = 0; c < 256; ++c) t[c] = classes_of(static_cast<unsigned char>(c));
  return t;
}();

bool in_class(char c, char_class k) noexcept {
  return (char_classes[static_cast<unsigned char>(c)] & k) != 0;
}

bool all_in_class(std::string_view s, char_class k) noexcept {
  for (const char c : s) {
    if (!in_class(c, k)) return false;
  }
  return true;
}

/// The end of the run of bytes of class k in s that starts at `from`: the index of the first
/// byte from there that is not of the class, or s.size().
std::size_t end_of_run(std::string_view s, std::size_t from, char_class k) noexcept {
  while (from < s.size() && in_class(s[from], k)) ++from;
  return from;
}

bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

/// Each byte's value as a lowercase hex digit, -1 for any other byte (HEXDIGLC: uppercase is
/// not allowed). A table, like the classes above: a traceparent has 52 digits to decode.
constexpr std::array<std::int8_t, 256> lower_hex_values = [] {
  std::array<std::int8_t, 256> t{};
  for (unsigned c = 0; c < 256; ++c) {
    t[c] = c >= '0' && c <= '9'   ? static_cast<std::int8_t>(c - '0')
           : c >= 'a' && c <= 'f' ? static_cast<std::int8_t>(c - 'a' + 10)
                                  : std::int8_t{-1};
  }
  return t;
}();

int lower_hex_value(char c) noexcept { return lower_hex_values[static_cast<unsigned char>(c)]; }

int any_hex_value(char c) noexcept {
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return lower_hex_value(c);
}

/// Decodes exactly out.size() bytes of lowercase hex from s.
template <std::size_t N>
bool decode_lower_hex(std::string_view s, std::array<std::uint8_t, N>& out) noexcept {
  if (s.size() != 2 * N) return false;
  for (std::size_t i = 0; i < N; ++i) {
    const int hi = lower_hex_value(s[2 * i]);
    const int lo = lower_hex_value(s[2 * i + 1]);
    if ((hi | lo) < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return true;
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& a) noexcept {
  static_assert(N % 8 == 0, "ids are whole 64-bit words");
  std::uint64_t any = 0;
  for (std::size_t i = 0; i < N; i += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, a.data() + i, 8);
    any |= w;
  }
  return any == 0;
}

void append_hex(std::string& out, const std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(hex_digits[p[i] >> 4]);
    out.push_back(hex_digits[p[i] & 0x0f]);
  }
}

// --- random ids ------------------------------------------------------------------------------

std::uint64_t splitmix64(std::uint64_t& x) noexcept {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// xoshiro256**, one per thread: ids need to be unpredictable enough to be unique, not secret.
/// The generator belongs to the OS thread on purpose (it is not ambient state of a task).
class id_generator {
 public:
  id_generator() {
    static std::atomic<std::uint64_t> instances{0};
    std::random_device rd;
    std::uint64_t seed = (std::uint64_t{rd()} << 32) ^ rd();
    seed ^= static_cast<std::uint64_t>(
        std::chrono::high_resolution_clock::now().time_since_epoch().count());
    seed ^= std::hash<std::thread::id>{}(std::this_thread::get_id()) * 0x9e3779b97f4a7c15ull;
    // Relaxed: the counter only has to differ between threads, it orders nothing.
    seed += instances.fetch_add(1, std::memory_order_relaxed) * 0xd1b54a32d192ed03ull;
    for (auto& w : s_) w = splitmix64(seed);
  }

  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Fills a with random bytes, never all zero.
  template <std::size_t N>
  void fill(std::array<std::uint8_t, N>& a) noexcept {
    static_assert(N % 8 == 0, "ids are whole 64-bit words");
    do {
      for (std::size_t i = 0; i < N; i += 8) {
        const std::uint64_t v = next();
        std::memcpy(a.data() + i, &v, 8);
      }
    } while (all_zero(a));
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

id_generator& ids() {
  thread_local id_generator g;
  return g;
}

// --- tracestate keys -------------------------------------------------------------------------

bool is_lcalpha(char c) noexcept { return c >= 'a' && c <= 'z'; }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_keychar(char c) noexcept { return in_class(c, tracestate_kc); }

/// first-char rule, then keychars, total length 1..max.
bool key_part(std::string_view s, std::size_t max, bool digit_first) noexcept {
  if (s.empty() || s.size() > max) return false;
  if (!is_lcalpha(s[0]) && !(digit_first && is_digit(s[0]))) return false;
  return std::all_of(s.begin() + 1, s.end(), is_keychar);
}

// --- baggage characters ----------------------------------------------------------------------

bool all_baggage_octets(std::string_view s) noexcept { return all_in_class(s, baggage_oct); }

/// s with U+FFFD for each ill-formed UTF-8 subsequence (the "maximal subpart" practice of
/// Unicode, chapter 3), and well-formed sequences as they are.
std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  constexpr std::string_view replacement = "\xEF\xBF\xBD";
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out.push_back(s[i++]);
      continue;
    }
    std::size_t need = 0;
    unsigned char lo = 0x80, hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
    } else if (b == 0xe0) {
      need = 2, lo = 0xa0;
    } else if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) {
      need = 2;
    } else if (b == 0xed) {
      need = 2, hi = 0x9f;
    } else if (b == 0xf0) {
      need = 3, lo = 0x90;
    } else if (b >= 0xf1 && b <= 0xf3) {
      need = 3;
    } else if (b == 0xf4) {
      need = 3, hi = 0x8f;
    } else {
      out += replacement;
      ++i;
      continue;
    }
    std::size_t j = i + 1;
    std::size_t got = 0;
    while (got < need && j < s.size()) {
      const auto c = static_cast<unsigned char>(s[j]);
      const unsigned char l = got == 0 ? lo : 0x80;
      const unsigned char h = got == 0 ? hi : 0xbf;
      if (c < l || c > h) break;
      ++got;
      ++j;
    }
    if (got == need) {
      out.append(s.substr(i, j - i));
    } else {
      out += replacement;
    }
    i = j;
  }
  return out;
}

/// Percent-decodes s (either hex case); nullopt on a '%' without two hex digits.
std::optional<std::string> percent_decode(std::string_view s) {
  std::string raw;
  raw.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      raw.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int h = any_hex_value(s[i + 1]);
    const int l = any_hex_value(s[i + 2]);
    if (h < 0 || l < 0) return std::nullopt;
    raw.push_back(static_cast<char>(h * 16 + l));
    i += 2;
  }
  return sanitize_utf8(raw);
}

bool passes_unencoded(char c) noexcept { return in_class(c, baggage_plain); }

/// Appends s to out with every byte outside baggage-octet, and '%', as %XX (uppercase, as RFC
/// 3986 recommends); the runs of bytes that pass as they are, in one append each.
void append_percent_encoded(std::string& out, std::string_view s) {
  std::size_t at = 0;
  while (at < s.size()) {
    const std::size_t run_end = end_of_run(s, at, baggage_plain);
    out.append(s, at, run_end - at);
    if (run_end == s.size()) break;
    const auto c = static_cast<unsigned char>(s[run_end]);
    const char escaped[3] = {'%', "0123456789ABCDEF"[c >> 4], "0123456789ABCDEF"[c & 0x0f]};
    out.append(escaped, 3);
    at = run_end + 1;
  }
}

/// Normalises a property list (`k1=v1;k2`, OWS allowed around items, keys and '='); nullopt
/// when an item is not `key` or `key=value`. The values stay as sent (opaque to the spec).
std::optional<std::string> normalize_properties(std::string_view props) {
  std::string out;
  if (trim_ows(props).empty()) return out;
  while (true) {
    const std::size_t semi = props.find(';');
    const std::string_view item = trim_ows(props.substr(0, semi));
    const std::size_t eq = item.find('=');
    const std::string_view key = trim_ows(item.substr(0, eq));
    if (!baggage::valid_key(key)) return std::nullopt;
    if (!out.empty()) out.push_back(';');
    out.append(key);
    if (eq != std::string_view::npos) {
      const std::string_view value = trim_ows(item.substr(eq + 1));
      if (!all_baggage_octets(value)) return std::nullopt;
      out.push_back('=');
      out.append(value);
    }
    if (semi == std::string_view::npos) break;
    props.remove_prefix(semi + 1);
  }
  return out;
}

/// How many bytes of s are ','. Eight bytes at a time: every call's fill counts the commas of
/// its tracestate and baggage headers (list_capacity()).
std::size_t count_commas(std::string_view s) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101ull;
  constexpr std::uint64_t low7 = 0x7f7f7f7f7f7f7f7full;
  std::size_t n = 0;
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, s.data() + i, 8);
    const std::uint64_t x = w ^ (ones * ',');                // a zero byte for each ','
    const std::uint64_t nonzero = ((x & low7) + low7) | x;   // each non-zero byte's top bit set
    const std::uint64_t zero_tops = ~nonzero & (ones << 7);  // each zero byte's top bit set
    n += static_cast<std::size_t>(((zero_tops >> 7) * ones) >> 56);  // their sum, in the top byte
  }
  for (; i < s.size(); ++i) n += s[i] == ',' ? 1 : 0;
  return n;
}

/// The most members a comma-separated header can hold, a member per comma and one more, at
/// most `cap`: what a parse reserves, so that its member list is allocated once.
std::size_t list_capacity(std::string_view header, std::size_t cap) noexcept {
  return std::min(cap, 1 + count_commas(header));
}

/// A baggage list-member split at its first ';' and at the first '=' before it, OWS trimmed
/// around the key and the value, each part checked against its grammar: the key a token, the
/// value (as sent, percent-encoded) baggage-octets. nullopt when it is not
/// `key=value[;properties]`.
struct member_text {
  std::string_view key;
  std::string_view value;
  std::optional<std::string_view> properties;  // what follows the first ';', as sent
};

std::optional<member_text> split_baggage_member(std::string_view text) {
  const std::size_t semi = text.find(';');
  const std::string_view pair = text.substr(0, semi);
  const std::size_t eq = pair.find('=');
  if (eq == std::string_view::npos) return std::nullopt;
  member_text m{trim_ows(pair.substr(0, eq)), trim_ows(pair.substr(eq + 1)), std::nullopt};
  if (!baggage::valid_key(m.key) || !all_baggage_octets(m.value)) return std::nullopt;
  if (semi != std::string_view::npos) m.properties = text.substr(semi + 1);
  return m;
}

/// A member that needs work beyond a copy: a value to percent-decode, or properties to
/// normalise. nullopt when either is invalid.
std::optional<baggage::member> decode_baggage_member(const member_text& text) {
  std::optional<std::string> value = text.value.find('%') == std::string_view::npos
                                         ? std::optional<std::string>(std::in_place, text.value)
                                         : percent_decode(text.value);
  if (!value) return std::nullopt;
  std::optional<std::string> props = std::string();
  if (text.properties) {
    if (trim_ows(*text.properties).empty()) return std::nullopt;  // `k=v;`: no property key
    props = normalize_properties(*text.properties);
    if (!props) return std::nullopt;
  }
  return baggage::member{std::string(text.key), std::move(*value), std::move(*props)};
}

/// The bytes m takes in to_string(), without the separating comma.
std::size_t encoded_size(const baggage::member& m) noexcept {
  std::size_t value = 0;
  for (const char c : m.value) value += passes_unencoded(c) ? 1 : 3;
  return m.key.size() + 1 + value + (m.properties.empty() ? 0 : 1 + m.properties.size());
}

bool equals_lowercase(std::string_view name, std::string_view lower) noexcept {
  if (name.size() != lower.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

void append_field(std::optional<std::string>& field, std::string_view value) {
  if (field) {
    field->push_back(',');
    field->append(value);
  } else {
    field.emplace(value);
  }
}

}  // namespace

// --- trace_parent ----------------------------------------------------------------------------

bool trace_parent::valid() const noexcept { return !all_zero(trace_id) && !all_zero(parent_id); }

std::optional<trace_parent> trace_parent::parse(std::string_view header) {
  // Layout: vv-<32>-<16>-ff, dashes at 2, 35 and 52; 55 characters for version 00.
  const std::string_view s = trim_ows(header);
  if (s.size() < 3 || s[2] != '-') return std::nullopt;
  const int vh = lower_hex_value(s[0]);
  const int vl = lower_hex_value(s[1]);
  if (vh < 0 || vl < 0) return std::nullopt;
  const int version = vh * 16 + vl;
  if (version == 0xff) return std::nullopt;
  if (version == 0x00) {
    if (s.size() != 55) return std::nullopt;
  } else {
    // A later version: the 00 fields must be there, followed by the end or by a '-'.
    if (s.size() < 55 || (s.size() > 55 && s[55] != '-')) return std::nullopt;
  }
  if (s[35] != '-' || s[52] != '-') return std::nullopt;
  trace_parent tp;
  std::array<std::uint8_t, 1> flags{};
  if (!decode_lower_hex(s.substr(3, 32), tp.trace_id) ||
      !decode_lower_hex(s.substr(36, 16), tp.parent_id) ||
      !decode_lower_hex(s.substr(53, 2), flags)) {
    return std::nullopt;
  }
  if (!tp.valid()) return std::nullopt;
  // Level 1 defines only `sampled`; the other bits are reserved and vendors set them to zero.
  tp.flags = flags[0] & sampled_flag;
  return tp;
}

std::string trace_parent::to_string() const {
  // Written into a buffer of the header's fixed size, then made a string once: every outgoing
  // call writes its traceparent.
  std::array<char, 55> out{};
  const auto hex = [&out](std::size_t at, const std::uint8_t* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      out[at + 2 * i] = hex_digits[p[i] >> 4];
      out[at + 2 * i + 1] = hex_digits[p[i] & 0x0f];
    }
  };
  out[0] = '0';
  out[1] = '0';
  out[2] = '-';
  hex(3, trace_id.data(), trace_id.size());
  out[35] = '-';
  hex(36, parent_id.data(), parent_id.size());
  out[52] = '-';
  hex(53, &flags, 1);
  return std::string(out.data(), out.size());
}

std::string trace_parent::trace_id_hex() const {
  std::string out;
  append_hex(out, trace_id.data(), trace_id.size());
  return out;
}

std::string trace_parent::parent_id_hex() const {
  std::string out;
  append_hex(out, parent_id.data(), parent_id.size());
  return out;
}

trace_parent trace_parent::generate(std::uint8_t flags) {
  trace_parent tp;
  ids().fill(tp.trace_id);
  ids().fill(tp.parent_id);
  tp.flags = flags;
  return tp;
}

trace_parent trace_parent::child() const {
  trace_parent tp = *this;
  do {
    ids().fill(tp.parent_id);
  } while (tp.parent_id == parent_id);
  return tp;
}

// --- trace_state -----------------------------------------------------------------------------

bool trace_state::valid_key(std::string_view key) noexcept {
  const std::size_t at = key.find('@');
  if (at == std::string_view::npos) return key_part(key, 256, false);
  // tenant-id: ( lcalpha / DIGIT ) 0*240 keychar; system-id: lcalpha 0*13 keychar.
  return key_part(key.substr(0, at), 241, true) && key_part(key.substr(at + 1), 14, false);
}

bool trace_state::valid_value(std::string_view value) noexcept {
  if (value.empty() || value.size() > 256 || value.back() == ' ') return false;
  return all_in_class(value, tracestate_vc);
}

std::optional<trace_state> trace_state::parse(std::string_view header) {
  trace_state ts;
  std::size_t at = 0;  // where the member being read starts
  while (true) {
    // A member in the usual form, `key=value` with no whitespace around it, is found in one
    // pass over its bytes; any other text up to the next comma (whitespace to trim, an empty
    // member, a byte no key or value may hold) is split and trimmed by the general path. Both
    // then check the key and the value against the grammar.
    std::string_view key;
    std::string_view value;
    bool member_here = true;  // false for an empty member, which is skipped
    std::size_t comma = std::string_view::npos;
    const std::size_t key_end = end_of_run(header, at, tracestate_kc_at);
    const std::size_t value_end = key_end < header.size() && header[key_end] == '='
                                      ? end_of_run(header, key_end + 1, tracestate_vc)
                                      : std::string_view::npos;
    // The usual form: a key, '=', a value that is not empty and does not end in a space (which
    // would be whitespace to trim), then ',' or the end.
    if (key_end > at && value_end != std::string_view::npos && value_end > key_end + 1 &&
        header[value_end - 1] != ' ' && (value_end == header.size() || header[value_end] == ',')) {
      key = header.substr(at, key_end - at);
      value = header.substr(key_end + 1, value_end - key_end - 1);
      if (value_end < header.size()) comma = value_end;
    } else {
      comma = header.find(',', at);
      const std::string_view item = trim_ows(header.substr(at, comma - at));
      member_here = !item.empty();
      if (member_here) {
        const std::size_t eq = item.find('=');
        if (eq == std::string_view::npos) return std::nullopt;
        key = item.substr(0, eq);
        value = item.substr(eq + 1);
      }
    }
    if (member_here) {
      if (!valid_key(key) || !valid_value(value)) return std::nullopt;
      const auto same_key = [key](const member& m) { return m.key == key; };
      if (std::any_of(ts.members_.begin(), ts.members_.end(), same_key)) {
        return std::nullopt;  // keys are unique
      }
      if (ts.members_.size() == max_members) return std::nullopt;  // a 33rd member
      if (ts.members_.empty()) ts.members_.reserve(list_capacity(header, max_members));
      ts.members_.push_back(member{std::string(key), std::string(value)});
    }
    if (comma == std::string_view::npos) break;
    at = comma + 1;
  }
  return ts;
}

std::optional<std::string> trace_state::get(std::string_view key) const {
  for (const member& m : members_) {
    if (m.key == key) return m.value;
  }
  return std::nullopt;
}

void trace_state::put(std::string_view key, std::string_view value) {
  if (!valid_key(key)) {
    throw std::invalid_argument("baton: invalid tracestate key '" + std::string(key) + "'");
  }
  if (!valid_value(value)) {
    throw std::invalid_argument("baton: invalid tracestate value for key '" + std::string(key) +
                                "'");
  }
  member m{std::string(key), std::string(value)};  // may throw: before any change
  erase(key);
  members_.insert(members_.begin(), std::move(m));
  if (members_.size() > max_members) members_.pop_back();  // the spec drops from the end
}

bool trace_state::erase(std::string_view key) {
  const auto it =
      std::find_if(members_.begin(), members_.end(), [&](const member& m) { return m.key == key; });
  if (it == members_.end()) return false;
  members_.erase(it);
  return true;
}

std::string trace_state::to_string() const {
  std::size_t size = members_.empty() ? 0 : members_.size() - 1;  // the commas
  for (const member& m : members_) size += m.key.size() + 1 + m.value.size();
  std::string out;
  out.reserve(size);  // one allocation
  for (const member& m : members_) {
    if (!out.empty()) out.push_back(',');
    out += m.key;
    out.push_back('=');
    out += m.value;
  }
  return out;
}

// --- baggage ---------------------------------------------------------------------------------

bool baggage::valid_key(std::string_view key) noexcept {
  return !key.empty() && all_in_class(key, tchar);
}

baggage baggage::parse(std::string_view header) {
  baggage b;
  b.members_.reserve(list_capacity(header, max_members));
  std::size_t at = 0;  // where the member being read starts
  while (true) {
    // Stop at the first member that does not fit: the longest prefix within the limits.
    // The usual member, `key=value` with no whitespace, no properties and no '%' in its value,
    // is found in one pass over its bytes and copied as it is: baggage-octets are printable
    // ASCII, so such a value is its own decoding and valid UTF-8. Any other text up to the
    // next comma goes through the general path (split, trimmed, checked, decoded).
    const std::size_t key_end = end_of_run(header, at, tchar);
    const std::size_t value_end = key_end > at && key_end < header.size() && header[key_end] == '='
                                      ? end_of_run(header, key_end + 1, baggage_plain)
                                      : std::string_view::npos;
    std::size_t comma = std::string_view::npos;
    if (value_end != std::string_view::npos &&
        (value_end == header.size() || header[value_end] == ',')) {
      if (!b.put_plain(header.substr(at, key_end - at),
                       header.substr(key_end + 1, value_end - key_end - 1))) {
        break;
      }
      if (value_end < header.size()) comma = value_end;
    } else {
      comma = header.find(',', at);
      if (const std::optional<member_text> text =
              split_baggage_member(trim_ows(header.substr(at, comma - at)))) {
        if (!text->properties && text->value.find('%') == std::string_view::npos) {
          if (!b.put_plain(text->key, text->value)) break;
        } else if (std::optional<member> m = decode_baggage_member(*text)) {
          if (!b.put(std::move(*m))) break;
        }
      }
    }
    if (comma == std::string_view::npos) break;
    at = comma + 1;
  }
  return b;
}

std::optional<std::string> baggage::get(std::string_view key) const {
  if (const member* m = find(key)) return m->value;
  return std::nullopt;
}

const baggage::member* baggage::find(std::string_view key) const noexcept {
  for (const member& m : members_) {
    if (m.key == key) return &m;
  }
  return nullptr;
}

bool baggage::set(std::string_view key, std::string_view value, std::string_view properties) {
  if (!valid_key(key)) {
    throw std::invalid_argument("baton: invalid baggage key '" + std::string(key) + "'");
  }
  std::optional<std::string> props = normalize_properties(properties);
  if (!props) {
    throw std::invalid_argument("baton: invalid baggage properties for key '" + std::string(key) +
                                "'");
  }
  return put(member{std::string(key), std::string(value), std::move(*props)});
}

baggage::member* baggage::find_member(std::string_view key) noexcept {
  // find() on this baggage, which is not const here: the member may be changed.
  return const_cast<member*>(std::as_const(*this).find(key));
}

std::optional<std::size_t> baggage::bytes_with(const member* old, std::size_t size) const noexcept {
  std::size_t bytes = 0;
  if (old != nullptr) {
    bytes = encoded_bytes_ - encoded_size(*old) + size;
  } else {
    if (members_.size() + 1 > max_members) return std::nullopt;
    bytes = encoded_bytes_ + (members_.empty() ? 0 : 1) + size;  // a comma before it
  }
  if (bytes > max_bytes) return std::nullopt;
  return bytes;
}

bool baggage::put(member m) {
  member* old = find_member(m.key);
  const std::optional<std::size_t> bytes = bytes_with(old, encoded_size(m));
  if (!bytes) return false;
  if (old != nullptr) {
    *old = std::move(m);
  } else {
    members_.push_back(std::move(m));
  }
  encoded_bytes_ = *bytes;
  return true;
}

bool baggage::put_plain(std::string_view key, std::string_view value) {
  member* old = find_member(key);
  // Every byte of the value passes unencoded and there are no properties.
  const std::optional<std::size_t> bytes = bytes_with(old, key.size() + 1 + value.size());
  if (!bytes) return false;
  if (old != nullptr) {
    old->value.assign(value);  // may throw: before anything else changed
    old->properties.clear();
  } else {
    // The member is whole before the list changes. Its strings are made from the bytes, which
    // costs less than assigning them into empty ones.
    members_.push_back(member{std::string(key), std::string(value), std::string()});
  }
  encoded_bytes_ = *bytes;
  return true;
}

bool baggage::erase(std::string_view key) {
  const auto it =
      std::find_if(members_.begin(), members_.end(), [&](const member& m) { return m.key == key; });
  if (it == members_.end()) return false;
  encoded_bytes_ -= encoded_size(*it) + (members_.size() > 1 ? 1 : 0);  // and one comma
  members_.erase(it);
  return true;
}

std::string baggage::to_string() const {
  std::string out;
  out.reserve(encoded_bytes_);  // its exact size: one allocation
  for (const member& m : members_) {
    if (!out.empty()) out.push_back(',');
    out += m.key;
    out.push_back('=');
    append_percent_encoded(out, m.value);
    if (!m.properties.empty()) {
      out.push_back(';');
      out += m.properties;
    }
  }
  return out;
}

// --- the context vars ------------------------------------------------------------------------

// Leaked on purpose, like the var registry: contexts holding these values may outlive statics.
context_var<std::optional<trace_parent>>& trace_parent_var() {
  static auto* v = new context_var<std::optional<trace_parent>>("baton.traceparent");
  return *v;
}

context_var<trace_state>& trace_state_var() {
  static auto* v = new context_var<trace_state>("baton.tracestate");
  return *v;
}

context_var<baggage>& baggage_var() {
  static auto* v = new context_var<baggage>("baton.baggage");
  return *v;
}

std::optional<trace_parent> current_trace() { return trace_parent_var().get(std::nullopt); }
trace_state current_trace_state() { return trace_state_var().get(trace_state()); }
baggage current_baggage() { return baggage_var().get(baggage()); }

void trace_tokens::reset() const {
  baggage_var().reset(baggage_token);
  trace_state_var().reset(state_token);
  trace_parent_var().reset(parent_token);
}

trace_tokens extract(const header_getter& get) {
  detail::trace_headers h;
  if (std::optional<std::string_view> v = get("traceparent")) {
    h.traceparent.emplace(*v);
    h.traceparent_count = 1;
  }
  if (std::optional<std::string_view> v = get("tracestate")) h.tracestate.emplace(*v);
  if (std::optional<std::string_view> v = get("baggage")) h.baggage.emplace(*v);
  return detail::extract_headers(h);
}

void inject(const header_setter& set) {
  detail::trace_headers h = detail::current_headers();
  if (h.traceparent) set("traceparent", std::move(*h.traceparent));
  if (h.tracestate) set("tracestate", std::move(*h.tracestate));
  if (h.baggage) set("baggage", std::move(*h.baggage));
}

token<std::optional<trace_parent>> start_span() {
  const std::optional<trace_parent> current = current_trace();
  return trace_parent_var().set(current ? current->child() : trace_parent::generate());
}

namespace detail {

void trace_headers::add(std::string_view name, std::string_view value) {
  if (equals_lowercase(name, "traceparent")) {
    if (traceparent_count++ == 0) traceparent.emplace(value);
  } else if (equals_lowercase(name, "tracestate")) {
    append_field(tracestate, value);
  } else if (equals_lowercase(name, "baggage")) {
    append_field(baggage, value);
  }
}

bool is_trace_header(std::string_view name) noexcept {
  return equals_lowercase(name, "traceparent") || equals_lowercase(name, "tracestate") ||
         equals_lowercase(name, "baggage");
}

trace_tokens extract_headers(const trace_headers& h) {
  trace_header_views v;
  v.traceparent = h.traceparent;
  v.traceparent_count = h.traceparent_count;
  v.tracestate = h.tracestate;
  v.baggage = h.baggage;
  return extract_views(v);
}

trace_tokens extract_views(const trace_header_views& h, bool new_span) {
  trace_values v = parse_views(h, new_span);
  // All three or none: undo the earlier sets if a later one throws (bad_alloc).
  token<std::optional<trace_parent>> t1 = trace_parent_var().set(v.parent);
  try {
    token<trace_state> t2 = trace_state_var().set(std::move(v.state));
    try {
      token<baton::baggage> t3 = baggage_var().set(std::move(v.bag));
      return trace_tokens{std::move(t1), std::move(t2), std::move(t3)};
    } catch (...) {
      trace_state_var().reset(t2);
      throw;
    }
  } catch (...) {
    trace_parent_var().reset(t1);
    throw;
  }
}

trace_values parse_views(const trace_header_views& h, bool new_span) {
  std::optional<trace_parent> parent;
  // Two traceparent fields are as good as none (the spec's test suite restarts the trace).
  if (h.traceparent && h.traceparent_count == 1) parent = trace_parent::parse(*h.traceparent);
  trace_state state;
  // tracestate is read only with a valid traceparent; an invalid one is discarded whole.
  if (parent && h.tracestate) {
    if (std::optional<trace_state> parsed = trace_state::parse(*h.tracestate)) {
      state = std::move(*parsed);
    }
  }
  baton::baggage bag;
  if (h.baggage) bag = baton::baggage::parse(*h.baggage);
  if (new_span) parent = parent ? parent->child() : trace_parent::generate();
  return {parent, std::move(state), std::move(bag)};
}

namespace {

/// The current context's value of `var`, where the context holds it (no copy), or nullptr when
/// the context has none. Valid until the current context changes.
template <class T>
const T* current_boxed(const context_var<T>& var) noexcept {
  const context_cell* c = current_cell;
  const slot* s = c != nullptr ? find(c->root, access::key(var)) : nullptr;
  return s != nullptr ? &boxed_value<T>(*s) : nullptr;
}

}  // namespace

trace_headers current_headers() {
  // The lists are read where the context holds them: an outgoing call writes them, and a copy
  // of each would be its strings made twice.
  trace_headers h;
  const std::optional<trace_parent> parent = current_trace();
  if (parent) {
    h.traceparent = parent->to_string();
    h.traceparent_count = 1;
    const trace_state* state = current_boxed(trace_state_var());
    if (state != nullptr && !state->empty()) h.tracestate = state->to_string();
  }
  const baton::baggage* bag = current_boxed(baggage_var());
  if (bag != nullptr && !bag->empty()) h.baggage = bag->to_string();
  return h;
}

}  // namespace detail

}  // namespace baton
