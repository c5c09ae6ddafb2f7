// SPDX-License-Identifier: BSL-1.0
// spdlog integration: log lines that carry context_var values of the current baton context.
#pragma once

// Optional: needs spdlog built with fmt (bundled or external: spdlog's default); not in baton.hpp.
//
// Contract:
//   log_fields            which vars to print, under which labels, in which order.
//     add(var)            prints var as `name=value` (name = var.name()).
//     add(var, label)     `label=value`; an empty label prints the value alone.
//     add(var, label, f)  prints f(value) instead of value (f returns anything fmt-formattable):
//                         the way to log a T that fmt cannot format.
//     missing(text)       vars with no value (try_get() == nullopt) print `label=text`;
//                         by default they are left out, separator included.
//     separators(a, b)    between fields (default " ") and between label and value ("=").
//     append_current(buf), current()
//                         the fields of the current context: what a log line would show.
//   context_flag          a spdlog::custom_flag_formatter printing log_fields for the context
//                         current on the thread that FORMATS the line. Honours spdlog padding
//                         (`%-40*`, `%=20!*`, ...).
//   make_context_formatter(pattern, fields, flag = '*')
//                         a pattern_formatter with context_flag registered as %<flag>.
//   log_with_context(logger, [loc,] level, fields, fmt, args...)
//                         renders the fields at the call site into the message itself:
//                         `[request_id=r-42 user=ada] text` (just `text` when no field shows).
//   log_value(text)       a string for the message text, formatted by fmt (`"{}"`) with the rule
//                         the values follow (below): `spdlog::info("GET {}", log_value(path))`.
//
// Sync vs async (read this): a synchronous spdlog::logger formats each line inside the log
// call, on the caller's thread, so context_flag sees the caller's context: the task's, the
// innermost context::run()'s, or the thread's implicit one. spdlog::async_logger formats on
// its worker thread, where context_flag sees the WORKER's context (normally empty), and the
// same holds for lines kept by enable_backtrace() until dump_backtrace(). spdlog 1.10 gives a
// log_msg no room for extra data, so for async loggers use log_with_context(), which puts the
// fields into the payload before the line is queued. A sink wrapper cannot help: async sinks
// run on the worker too.
//
// Values cannot forge a field or end a line. Each value (and the missing() text) is written
// bare when it is non-empty printable ASCII without a space, '"', '\', '=', '[', ']' or any
// character of the two separators; otherwise it is written between double quotes, with '"',
// '\', LF, CR and TAB as \", \\, \n, \r, \t, other ASCII controls and DEL and every byte that is
// not part of valid UTF-8 as \xHH, and the C1 controls, U+2028 and U+2029 as \uHHHH. So a line
// holds only valid UTF-8, and a reader that splits the fields at the separators outside quotes
// gets back exactly the fields that were added, whatever a value contains (a request id
// `a]user=admin[` prints as `request_id="a]user=admin["`). log_value(text) applies the same
// rule to a string placed in the message text. Labels and separators are the program's own
// text and are written as given.
//
// Values are read with context_var::try_get(), so a var's default counts as its value, and
// each formatted line copies each value once. The vars must outlive every log_fields,
// context_flag and formatter that names them (vars are normally globals).
//
// Thread-safety: this header keeps no thread-local or global state of its own; it reads the
// current context (thread-local state of baton's) through context_var. A log_fields must not
// be changed while formatters made from it are in use: context_flag keeps its own immutable
// shared copy, so after construction a context_flag may format on any number of threads at
// once (spdlog's _mt sinks serialise them anyway).
//
// Example:
//   baton::context_var<std::string> request_id("request_id");
//   baton::context_var<account> user("user");    // account: not formattable by fmt
//   baton::log_fields fields;
//   fields.add(request_id).add(user, "user", [](const account& a) { return a.name; });
//   logger->set_formatter(baton::make_context_formatter("[%*] %v", fields));
//   (void)request_id.set("r-42");
//   (void)user.set(account{.name = "ada"});
//   logger->info("hello");                      // [request_id=r-42 user=ada] hello

#include <baton/context_var.hpp>

#include <spdlog/common.h>
#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>

#include <concepts>
#include <ctime>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(SPDLOG_USE_STD_FORMAT)
#error "baton/spdlog.hpp needs spdlog built with fmt (SPDLOG_USE_STD_FORMAT is not supported)"
#endif

namespace baton {

namespace detail {
inline void append_text(spdlog::memory_buf_t& out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

/// The bytes a bare value may hold: printable ASCII but space, '"', backslash, '=', '[' and ']'.
constexpr bool plain_log_byte(unsigned char c) noexcept {
  return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=' && c != '[' && c != ']';
}

/// The length (2 to 4) of the valid UTF-8 sequence that starts at s[i], 0 when none does
/// (overlong forms, surrogates and code points past U+10FFFF are not valid).
inline std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char lead = byte(0);
  std::size_t n = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xbf;  // the bounds of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    n = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    n = 3;
    if (lead == 0xe0) low = 0xa0;   // overlong
    if (lead == 0xed) high = 0x9f;  // surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    n = 4;
    if (lead == 0xf0) low = 0x90;   // overlong
    if (lead == 0xf4) high = 0x8f;  // past U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - i < n || byte(1) < low || byte(1) > high) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (byte(k) < 0x80 || byte(k) > 0xbf) return 0;
  }
  return n;
}

/// Appends v bare when it is non-empty, every byte is plain_log_byte() and none is in
/// `specials` (the separators' characters); otherwise quoted and escaped (see the contract).
inline void append_log_value(spdlog::memory_buf_t& out, std::string_view v,
                             std::string_view specials) {
  bool bare = !v.empty();
  for (const char c : v) {
    if (!plain_log_byte(static_cast<unsigned char>(c)) ||
        specials.find(c) != std::string_view::npos) {
      bare = false;
      break;
    }
  }
  if (bare) {
    append_text(out, v);
    return;
  }
  static constexpr char hex[] = "0123456789abcdef";
  const auto escape_byte = [&](unsigned char c) {
    const char e[] = {'\\', 'x', hex[c >> 4], hex[c & 0xf]};
    out.append(e, e + 4);
  };
  out.push_back('"');
  for (std::size_t i = 0; i < v.size();) {
    const auto c = static_cast<unsigned char>(v[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          append_text(out, "\\\"");
          break;
        case '\\':
          append_text(out, "\\\\");
          break;
        case '\n':
          append_text(out, "\\n");
          break;
        case '\r':
          append_text(out, "\\r");
          break;
        case '\t':
          append_text(out, "\\t");
          break;
        default:
          if (c < 0x20 || c == 0x7f) {
            escape_byte(c);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence(v, i);
    if (n == 0) {
      escape_byte(c);
      ++i;
      continue;
    }
    const auto second = static_cast<unsigned char>(v[i + 1]);
    const bool c1_control = n == 2 && c == 0xc2 && second <= 0x9f;  // U+0080..U+009F
    const bool line_break = n == 3 && c == 0xe2 && second == 0x80 &&
                            (v[i + 2] == '\xa8' || v[i + 2] == '\xa9');  // U+2028, U+2029
    if (c1_control) {
      const char e[] = {'\\', 'u', '0', '0', hex[second >> 4], hex[second & 0xf]};
      out.append(e, e + 6);
    } else if (line_break) {
      append_text(out, v[i + 2] == '\xa8' ? "\\u2028" : "\\u2029");
    } else {
      append_text(out, v.substr(i, n));
    }
    i += n;
  }
  out.push_back('"');
}
}  // namespace detail

/// A string to log in a message's text by the rule the fields' values follow: bare when that
/// is safe, otherwise quoted and escaped (see the contract). Formatted by fmt with "{}".
class log_value {
 public:
  explicit log_value(std::string_view text) noexcept : text_(text) {}
  std::string_view text() const noexcept { return text_; }

 private:
  std::string_view text_;  // not owned: a log_value lives for one log call
};

/// Which context vars a log line shows, labelled and in order.
class log_fields {
 public:
  template <class T>
  log_fields& add(const context_var<T>& var) {
    return add(var, var.name());
  }

  template <class T>
  log_fields& add(const context_var<T>& var, std::string label) {
    static_assert(fmt::is_formattable<T>::value,
                  "baton::log_fields: fmt cannot format this var's T; pass a function that "
                  "makes it formattable: fields.add(var, label, [](const T& v) { return ...; })");
    return add(var, std::move(label), [](const T& v) -> const T& { return v; });
  }

  template <class T, std::invocable<const T&> Format>
  log_fields& add(const context_var<T>& var, std::string label, Format format) {
    using shown = std::remove_cvref_t<std::invoke_result_t<const Format&, const T&>>;
    static_assert(fmt::is_formattable<shown>::value,
                  "baton::log_fields: the format function must return something fmt can format");
    auto append_value = [&var, format = std::move(format)](spdlog::memory_buf_t& text) {
      const std::optional<T> v = var.try_get();
      if (!v) return false;
      fmt::format_to(fmt::appender(text), "{}", std::invoke(format, *v));
      return true;
    };
    fields_.push_back(field{std::move(label), std::move(append_value)});
    return *this;
  }

  /// Vars without a value print `label<value_separator>text` instead of being left out.
  log_fields& missing(std::string text) {
    missing_ = std::move(text);
    return *this;
  }

  log_fields& separators(std::string between_fields, std::string between_label_and_value) {
    field_separator_ = std::move(between_fields);
    value_separator_ = std::move(between_label_and_value);
    specials_ = field_separator_ + value_separator_;
    return *this;
  }

  std::size_t size() const noexcept { return fields_.size(); }
  bool empty() const noexcept { return fields_.empty(); }

  /// Appends the fields of the current context to out.
  void append_current(spdlog::memory_buf_t& out) const {
    bool first = true;
    for (const field& f : fields_) {
      const std::size_t mark = out.size();
      if (!first) detail::append_text(out, field_separator_);
      if (!f.label.empty()) {
        detail::append_text(out, f.label);
        detail::append_text(out, value_separator_);
      }
      spdlog::memory_buf_t text;
      if (f.append_value(text)) {
        detail::append_log_value(out, std::string_view(text.data(), text.size()), specials_);
        first = false;
      } else if (missing_) {
        detail::append_log_value(out, *missing_, specials_);
        first = false;
      } else {
        out.resize(mark);  // leave the var out, with its separator
      }
    }
  }

  /// The fields of the current context as a string, e.g. "request_id=r-42 user=ada".
  std::string current() const {
    spdlog::memory_buf_t buf;
    append_current(buf);
    return std::string(buf.data(), buf.size());
  }

 private:
  struct field {
    std::string label;
    // Formats the value, unescaped, into its argument; false: no value in the context.
    std::function<bool(spdlog::memory_buf_t&)> append_value;
  };

  std::vector<field> fields_;
  std::string field_separator_ = " ";
  std::string value_separator_ = "=";
  std::string specials_ = " =";  // the separators' characters: a value holding one is quoted
  std::optional<std::string> missing_;
};

/// A pattern flag printing log_fields for the context current on the formatting thread.
/// Right for synchronous loggers only (see the top of this header).
class context_flag final : public spdlog::custom_flag_formatter {
 public:
  explicit context_flag(log_fields fields)
      : fields_(std::make_shared<const log_fields>(std::move(fields))) {}

  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    if (!padinfo_.enabled()) {
      fields_->append_current(dest);
      return;
    }
    spdlog::memory_buf_t text;
    fields_->append_current(text);
    pad_into(std::string_view(text.data(), text.size()), dest);
  }

  std::unique_ptr<spdlog::custom_flag_formatter> clone() const override {
    return std::unique_ptr<spdlog::custom_flag_formatter>(new context_flag(fields_));
  }

 private:
  explicit context_flag(std::shared_ptr<const log_fields> f) noexcept : fields_(std::move(f)) {}

  // The same rules as spdlog's own flags: pad to width on the chosen side, and with `!`
  // truncate what is longer.
  void pad_into(std::string_view text, spdlog::memory_buf_t& dest) const {
    using side = spdlog::details::padding_info::pad_side;
    const std::size_t width = padinfo_.width_;
    if (text.size() >= width) {
      detail::append_text(dest, padinfo_.truncate_ ? text.substr(0, width) : text);
      return;
    }
    const std::size_t pad = width - text.size();
    const std::size_t before = padinfo_.side_ == side::left     ? pad
                               : padinfo_.side_ == side::center ? pad / 2
                                                                : 0;
    for (std::size_t i = 0; i < before; ++i) dest.push_back(' ');
    detail::append_text(dest, text);
    for (std::size_t i = before; i < pad; ++i) dest.push_back(' ');
  }

  std::shared_ptr<const log_fields> fields_;
};

/// A pattern_formatter with context_flag as %<flag> (default %*), for synchronous loggers.
inline std::unique_ptr<spdlog::pattern_formatter> make_context_formatter(std::string pattern,
                                                                         log_fields fields,
                                                                         char flag = '*') {
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<context_flag>(flag, std::move(fields)).set_pattern(std::move(pattern));
  return f;
}

/// Logs `[fields] message` with the fields rendered here, on the caller's thread: the way to
/// carry context through an async_logger. Just `message` when no field shows.
template <class... Args>
void log_with_context(spdlog::logger& logger, spdlog::source_loc loc,
                      spdlog::level::level_enum level, const log_fields& fields,
                      spdlog::format_string_t<Args...> format, Args&&... args) {
  if (!logger.should_log(level) && !logger.should_backtrace()) return;
  spdlog::memory_buf_t line;
  line.push_back('[');
  fields.append_current(line);
  if (line.size() == 1) {
    line.clear();
  } else {
    detail::append_text(line, "] ");
  }
  fmt::format_to(fmt::appender(line), format, std::forward<Args>(args)...);
  logger.log(loc, level, spdlog::string_view_t(line.data(), line.size()));
}

template <class... Args>
void log_with_context(spdlog::logger& logger, spdlog::level::level_enum level,
                      const log_fields& fields, spdlog::format_string_t<Args...> format,
                      Args&&... args) {
  log_with_context(logger, spdlog::source_loc{}, level, fields, format,
                   std::forward<Args>(args)...);
}

}  // namespace baton

/// fmt formats a baton::log_value escaped (and honours width and alignment, as for a string).
template <>
struct fmt::formatter<baton::log_value> : fmt::formatter<fmt::string_view> {
  template <class FormatContext>
  auto format(const baton::log_value& v, FormatContext& ctx) const -> decltype(ctx.out()) {
    spdlog::memory_buf_t text;
    baton::detail::append_log_value(text, v.text(), {});
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(text.data(), text.size()),
                                                    ctx);
  }
};
