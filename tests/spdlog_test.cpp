// SPDX-License-Identifier: BSL-1.0
// baton/spdlog.hpp: log lines carry the current context's vars, per thread, task and logger kind.
#include <baton/spdlog.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>

#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <chrono>
#include <memory>
#include <random>
#include <string_view>
#include <utility>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using baton::context;
using baton::context_var;
using baton::task;
using baton_test::run_task;

namespace {

static_assert(std::is_base_of_v<spdlog::custom_flag_formatter, baton::context_flag>);

context_var<std::string> request_id("request_id");
context_var<std::string> user("user");
context_var<int> attempt("attempt");

struct account {
  int id;
  std::string name;
};
context_var<account> owner("owner");

/// A synchronous logger writing bare lines into a string.
struct captured_log {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> logger;

  explicit captured_log(const baton::log_fields& fields, std::string pattern = "[%*] %v") {
    logger = std::make_shared<spdlog::logger>(
        "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
    logger->set_formatter(baton::make_context_formatter(std::move(pattern), fields));
  }

  std::vector<std::string> lines() const {
    std::vector<std::string> result;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) result.push_back(line);
    return result;
  }
};

baton::log_fields request_and_user() {
  baton::log_fields fields;
  fields.add(request_id).add(user, "user");
  return fields;
}

/// The fields of a `[a=1 b="x y"]` prefix, split at spaces outside quotes and unescaped: what a
/// log reader would get back.
std::vector<std::pair<std::string, std::string>> parse_fields(std::string_view prefix) {
  std::vector<std::pair<std::string, std::string>> fields;
  std::size_t i = 0;
  const auto hex = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  while (i < prefix.size()) {
    const std::size_t eq = prefix.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string label(prefix.substr(i, eq - i));
    std::string value;
    i = eq + 1;
    if (i < prefix.size() && prefix[i] == '"') {
      for (++i; i < prefix.size() && prefix[i] != '"'; ++i) {
        if (prefix[i] != '\\') {
          value.push_back(prefix[i]);
          continue;
        }
        const char e = prefix[++i];
        if (e == 'n')
          value.push_back('\n');
        else if (e == 'r')
          value.push_back('\r');
        else if (e == 't')
          value.push_back('\t');
        else if (e == 'x') {
          value.push_back(static_cast<char>(hex(prefix[i + 1]) * 16 + hex(prefix[i + 2])));
          i += 2;
        } else if (e == 'u') {
          unsigned cp = 0;
          for (int k = 1; k <= 4; ++k) cp = cp * 16 + static_cast<unsigned>(hex(prefix[i + k]));
          i += 4;
          if (cp < 0x800) {
            value.push_back(static_cast<char>(0xc0 | (cp >> 6)));
          } else {
            value.push_back(static_cast<char>(0xe0 | (cp >> 12)));
            value.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
          }
          value.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        } else {
          value.push_back(e);  // '"' or '\\'
        }
      }
      ++i;  // the closing quote
    } else {
      const std::size_t end = prefix.find(' ', i);
      value = std::string(prefix.substr(i, end - i));
      i = end == std::string_view::npos ? prefix.size() : end;
    }
    fields.emplace_back(std::move(label), std::move(value));
    if (i < prefix.size() && prefix[i] == ' ') ++i;
  }
  return fields;
}

/// Whether s is valid UTF-8 (the same decoder the header uses is not trusted here).
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80           ? 1
                    : (c >> 5) == 0x6  ? 2
                    : (c >> 4) == 0xe  ? 3
                    : (c >> 3) == 0x1e ? 4
                                       : 0;
    if (n == 0 || i + n > s.size()) return false;
    unsigned cp = n == 1 ? c : c & (0x7f >> n);
    for (std::size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 2) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n;
  }
  return true;
}

}  // namespace

TEST_SUITE("spdlog") {
  TEST_CASE("a line carries the values of the current context") {
    captured_log log(request_and_user());
    context().run([&] {
      (void)request_id.set("r-42");
      (void)user.set("ada");
      log.logger->info("hello {}", 1);
    });
    CHECK(log.lines() == std::vector<std::string>{"[request_id=r-42 user=ada] hello 1"});
  }

  TEST_CASE("two contexts produce different lines from the same logger") {
    captured_log log(request_and_user());
    context a;
    context b;
    a.run([] { (void)request_id.set("r-1"); });
    b.run([] { (void)request_id.set("r-2"); });
    a.run([&] { log.logger->info("one"); });
    b.run([&] { log.logger->info("two"); });
    a.run([&] { log.logger->info("three"); });
    CHECK(log.lines() == std::vector<std::string>{"[request_id=r-1] one", "[request_id=r-2] two",
                                                  "[request_id=r-1] three"});
  }

  TEST_CASE("a nested context::run shows the inner values, and the outer ones after it") {
    captured_log log(request_and_user());
    context().run([&] {
      (void)request_id.set("outer");
      (void)user.set("ada");
      log.logger->info("before");
      context().run([&] {
        (void)request_id.set("inner");
        log.logger->info("inside");
      });
      log.logger->info("after");
    });
    CHECK(log.lines() == std::vector<std::string>{"[request_id=outer user=ada] before",
                                                  "[request_id=inner] inside",
                                                  "[request_id=outer user=ada] after"});
  }

  TEST_CASE("vars without a value are left out, with their separator") {
    captured_log log(request_and_user());
    context().run([&] {
      log.logger->info("none");
      (void)user.set("ada");
      log.logger->info("user only");
    });
    CHECK(log.lines() == std::vector<std::string>{"[] none", "[user=ada] user only"});
  }

  TEST_CASE("missing() prints a placeholder for vars without a value") {
    baton::log_fields fields = request_and_user();
    fields.missing("-");
    captured_log log(fields);
    context().run([&] {
      (void)user.set("ada");
      log.logger->info("x");
    });
    CHECK(log.lines() == std::vector<std::string>{"[request_id=- user=ada] x"});
  }

  TEST_CASE("a var's default counts as its value") {
    context_var<std::string> region("region", "eu");
    baton::log_fields fields;
    fields.add(region);
    captured_log log(fields);
    context().run([&] { log.logger->info("x"); });
    CHECK(log.lines() == std::vector<std::string>{"[region=eu] x"});
  }

  TEST_CASE("integers are formatted by fmt, other types by the given function") {
    baton::log_fields fields;
    fields.add(attempt).add(owner, "owner",
                            [](const account& a) { return a.name + "#" + std::to_string(a.id); });
    captured_log log(fields);
    context().run([&] {
      (void)attempt.set(3);
      (void)owner.set(account{7, "ada"});
      log.logger->info("x");
    });
    CHECK(log.lines() == std::vector<std::string>{"[attempt=3 owner=ada#7] x"});
  }

  TEST_CASE("an empty label prints the value alone, and separators are configurable") {
    baton::log_fields fields;
    fields.add(request_id, "").add(user, "u").separators(", ", ": ");
    captured_log log(fields);
    context().run([&] {
      (void)request_id.set("r-9");
      (void)user.set("ada");
      log.logger->info("x");
    });
    CHECK(log.lines() == std::vector<std::string>{"[r-9, u: ada] x"});
  }

  TEST_CASE("current() renders the fields of the current context") {
    const baton::log_fields fields = request_and_user();
    context().run([&] {
      CHECK(fields.current().empty());
      (void)request_id.set("r-5");
      CHECK(fields.current() == "request_id=r-5");
    });
  }

  TEST_CASE("the flag honours spdlog padding and truncation") {
    baton::log_fields fields;
    fields.add(request_id, "");
    captured_log left(fields, "[%6*] %v");
    captured_log right(fields, "[%-6*] %v");
    captured_log center(fields, "[%=7*] %v");
    captured_log truncated(fields, "[%2!*] %v");
    context().run([&] {
      (void)request_id.set("r-1");
      for (captured_log* log : {&left, &right, &center, &truncated}) log->logger->info("x");
    });
    CHECK(left.lines() == std::vector<std::string>{"[   r-1] x"});
    CHECK(right.lines() == std::vector<std::string>{"[r-1   ] x"});
    CHECK(center.lines() == std::vector<std::string>{"[  r-1  ] x"});
    CHECK(truncated.lines() == std::vector<std::string>{"[r-] x"});
  }

  TEST_CASE("the flag can use another letter and sits anywhere in a pattern") {
    auto formatter = baton::make_context_formatter("%v {%&}", request_and_user(), '&');
    std::ostringstream out;
    spdlog::logger logger("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
    logger.set_formatter(std::move(formatter));
    context().run([&] {
      (void)user.set("ada");
      logger.info("x");
    });
    CHECK(out.str() == "x {user=ada}\n");
  }

  TEST_CASE("every sink of a logger shows the fields (the formatter is cloned per sink)") {
    std::ostringstream out1;
    std::ostringstream out2;
    spdlog::logger logger("test", {std::make_shared<spdlog::sinks::ostream_sink_mt>(out1),
                                   std::make_shared<spdlog::sinks::ostream_sink_mt>(out2)});
    logger.set_formatter(baton::make_context_formatter("[%*] %v", request_and_user()));
    context().run([&] {
      (void)request_id.set("r-3");
      logger.info("x");
    });
    CHECK(out1.str() == "[request_id=r-3] x\n");
    CHECK(out2.str() == "[request_id=r-3] x\n");
  }

  TEST_CASE("threads logging to one logger each see their own context's values") {
    captured_log log(request_and_user());
    constexpr int threads = 8;
    constexpr int lines_each = 200;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&log, t] {
        context().run([&] {
          (void)request_id.set("r-" + std::to_string(t));
          (void)user.set("u" + std::to_string(t));
          for (int i = 0; i < lines_each; ++i) log.logger->info("from {}", t);
        });
      });
    }
    for (std::thread& th : pool) th.join();
    const std::vector<std::string> lines = log.lines();
    CHECK(lines.size() == threads * lines_each);
    int wrong = 0;
    for (const std::string& line : lines) {
      const std::string t = line.substr(line.rfind(' ') + 1);
      wrong += line != "[request_id=r-" + t + " user=u" + t + "] from " + t;
    }
    CHECK(wrong == 0);
  }

  TEST_CASE("tasks interleaving on a loop each log their own request id") {
    captured_log log(request_and_user());
    run_task([&]() -> task<> {
      auto worker = [&](std::string id) -> task<> {
        (void)request_id.set(id);
        for (int i = 0; i < 5; ++i) {
          log.logger->info("{} step {}", id, i);
          co_await baton::sleep(0ms);
        }
      };
      auto a = baton::spawn(worker("a"));
      auto b = baton::spawn(worker("b"));
      co_await a;
      co_await b;
    });
    const std::vector<std::string> lines = log.lines();
    REQUIRE(lines.size() == 10);
    CHECK(lines[0] == "[request_id=a] a step 0");
    CHECK(lines[1] == "[request_id=b] b step 0");  // interleaved: each sleep(0) yields
    for (const std::string& line : lines) {
      const std::string id = line.substr(line.find("] ") + 2, 1);
      CHECK(line.rfind("[request_id=" + id + "] " + id + " step ", 0) == 0);
    }
  }

  TEST_CASE("tasks on a multi-threaded loop each log their own request id") {
    captured_log log(request_and_user());
    baton::run_options opts;
    opts.threads = 4;
    run_task(
        [&]() -> task<> {
          auto worker = [&](int n) -> task<> {
            (void)request_id.set("r-" + std::to_string(n));
            for (int i = 0; i < 20; ++i) {
              log.logger->info("{}", n);
              co_await baton::sleep(0ms);
            }
          };
          std::vector<baton::task_handle<void>> hs;
          for (int n = 0; n < 16; ++n) hs.push_back(baton::spawn(worker(n)));
          for (auto& h : hs) co_await h;
        },
        opts);
    const std::vector<std::string> lines = log.lines();
    CHECK(lines.size() == 16 * 20);
    int wrong = 0;
    for (const std::string& line : lines) {
      const std::string n = line.substr(line.rfind(' ') + 1);
      wrong += line != "[request_id=r-" + n + "] " + n;
    }
    CHECK(wrong == 0);
  }

  TEST_CASE(
      "on an async logger the flag sees the worker's context; log_with_context the caller's") {
    std::ostringstream out;
    {
      auto pool = std::make_shared<spdlog::details::thread_pool>(128, 1);
      auto logger = std::make_shared<spdlog::async_logger>(
          "async", std::make_shared<spdlog::sinks::ostream_sink_mt>(out), pool,
          spdlog::async_overflow_policy::block);
      logger->set_formatter(baton::make_context_formatter("<%*> %v", request_and_user()));
      const baton::log_fields fields = request_and_user();
      context().run([&] {
        (void)request_id.set("r-7");
        logger->info("flag");
        baton::log_with_context(*logger, spdlog::level::info, fields, "helper {}", 1);
      });
      // The logger holds the pool only weakly: this destroys it, and its destructor joins the
      // worker once the queue is drained. Joining first also shows TSan the worker is done
      // (libspdlog is not instrumented, so the logger's refcount alone would not).
      pool.reset();
      logger.reset();
    }
    CHECK(out.str() == "<> flag\n<> [request_id=r-7] helper 1\n");
  }

  TEST_CASE("log_with_context: no brackets without fields, nothing below the logger's level") {
    std::ostringstream out;
    spdlog::logger logger("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
    logger.set_pattern("%v");
    logger.set_level(spdlog::level::info);
    const baton::log_fields fields = request_and_user();
    context().run([&] {
      baton::log_with_context(logger, spdlog::level::info, fields, "plain");
      (void)user.set("ada");
      baton::log_with_context(logger, spdlog::level::debug, fields, "hidden");
      baton::log_with_context(logger, spdlog::source_loc{"f.cpp", 3, "fn"}, spdlog::level::warn,
                              fields, "{}-{}", 1, 2);
    });
    CHECK(out.str() == "plain\n[user=ada] 1-2\n");
  }

  TEST_CASE("a value cannot forge a field or close the brackets: it is quoted") {
    captured_log log(request_and_user());
    context().run([&] {
      (void)request_id.set("a]user=admin[");
      (void)user.set("ada");
      log.logger->info("x");
    });
    REQUIRE(log.lines() == std::vector<std::string>{R"([request_id="a]user=admin[" user=ada] x)"});
    const std::string line = log.lines()[0];
    const auto fields = parse_fields(std::string_view(line).substr(1, line.rfind("] ") - 1));
    CHECK(fields == std::vector<std::pair<std::string, std::string>>{
                        {"request_id", "a]user=admin["}, {"user", "ada"}});
  }

  TEST_CASE("a value cannot end the line: line breaks and controls are escaped") {
    captured_log log(request_and_user());
    context().run([&] {
      (void)request_id.set("a\nb\r\tc\x01\x7f\x1b[2J");
      (void)user.set("\xc2\x85 \xe2\x80\xa8 \xe2\x80\xa9");  // NEL, LINE and PARAGRAPH SEPARATOR
      log.logger->info("x");
    });
    CHECK(log.lines() ==
          std::vector<std::string>{
              R"([request_id="a\nb\r\tc\x01\x7f\x1b[2J" user="\u0085 \u2028 \u2029"] x)"});
  }

  TEST_CASE("invalid UTF-8 is escaped byte by byte, valid UTF-8 is kept inside quotes") {
    const baton::log_fields fields = request_and_user();
    context().run([&] {
      const std::vector<std::pair<std::string, std::string>> cases = {
          {"\xff\xfe\xc3\x28", R"("\xff\xfe\xc3(")"},     // the issue's note body
          {"\xc0\xaf", R"("\xc0\xaf")"},                  // an overlong '/'
          {"\xed\xa0\x80", R"("\xed\xa0\x80")"},          // a surrogate
          {"\xf4\x90\x80\x80", R"("\xf4\x90\x80\x80")"},  // past U+10FFFF
          {"ab\xe2\x82", R"("ab\xe2\x82")"},              // cut short at the end
          {"Jos\xc3\xa9 \xf0\x9f\x8e\x89", "\"Jos\xc3\xa9 \xf0\x9f\x8e\x89\""},  // kept
      };
      for (const auto& [value, shown] : cases) {
        (void)request_id.set(value);
        CHECK(fields.current() == "request_id=" + shown);
      }
    });
  }

  TEST_CASE("quotes and backslashes are escaped, and an empty value is two quotes") {
    const baton::log_fields fields = request_and_user();
    context().run([&] {
      (void)request_id.set(R"(say "hi" \o/)");
      (void)user.set("");
      CHECK(fields.current() == R"(request_id="say \"hi\" \\o/" user="")");
    });
  }

  TEST_CASE("a value holding a character of the separators is quoted, and so is missing()") {
    baton::log_fields fields;
    fields.add(request_id, "id").add(user, "u").separators(", ", ": ").missing("n/a: none");
    context().run([&] {
      CHECK(fields.current() == R"(id: "n/a: none", u: "n/a: none")");
      (void)request_id.set("a,b");
      (void)user.set("x:y");
      CHECK(fields.current() == R"(id: "a,b", u: "x:y")");
      (void)request_id.set("a;b");
      CHECK(fields.current() == R"(id: a;b, u: "x:y")");
    });
  }

  TEST_CASE("any bytes in any value come back unchanged from a line that is valid UTF-8") {
    std::mt19937 random(13);
    captured_log log(request_and_user());
    std::vector<std::pair<std::string, std::string>> sent;
    context().run([&] {
      for (int n = 0; n < 2000; ++n) {
        std::string a(random() % 12, ' ');
        std::string b(random() % 12, ' ');
        for (char& c : a) c = static_cast<char>(random() % 256);
        for (char& c : b) c = static_cast<char>(n % 2 == 0 ? random() % 256 : 32 + random() % 96);
        (void)request_id.set(a);
        (void)user.set(b);
        sent.emplace_back(a, b);
        log.logger->info("x");
      }
    });
    const std::vector<std::string> lines = log.lines();
    REQUIRE(lines.size() == sent.size());
    int wrong = 0;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const std::string& line = lines[i];
      const auto fields = parse_fields(std::string_view(line).substr(1, line.size() - 4));
      const bool ok = valid_utf8(line) && line.find('\r') == std::string::npos &&
                      line.ends_with("] x") &&
                      fields == std::vector<std::pair<std::string, std::string>>{
                                    {"request_id", sent[i].first}, {"user", sent[i].second}};
      if (!ok && wrong++ < 3) MESSAGE("line " << i << ": " << line);
    }
    CHECK(wrong == 0);
  }

  TEST_CASE("log_value writes a string for the message text by the same rule") {
    CHECK(fmt::format("{}", baton::log_value("/hello")) == "/hello");
    CHECK(fmt::format("{}", baton::log_value("/a b\n")) == R"("/a b\n")");
    CHECK(fmt::format("{}", baton::log_value("/\xff")) == R"("/\xff")");
    CHECK(fmt::format("{}", baton::log_value("")) == R"("")");
    CHECK(fmt::format("[{:>8}]", baton::log_value("a=b")) == R"([   "a=b"])");
  }

}  // TEST_SUITE
