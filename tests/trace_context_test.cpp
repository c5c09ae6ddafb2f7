// SPDX-License-Identifier: BSL-1.0
// trace_parent, trace_state, baggage: the W3C rules; extract/inject/start_span: context vars.
#include <baton/trace_context.hpp>

#include <baton/context.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/to_thread.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>

#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

using baton::baggage;
using baton::context;
using baton::trace_parent;
using baton::trace_state;

namespace {

// The traceparent example of the specification, and pieces to build variants from.
constexpr const char* spec_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const std::string tid = "4bf92f3577b34da6a3ce929d0e0e4736";
const std::string pid = "00f067aa0ba902b7";

std::string header(const std::string& version, const std::string& trace, const std::string& parent,
                   const std::string& flags) {
  return version + "-" + trace + "-" + parent + "-" + flags;
}

bool rejected(const std::string& s) { return !trace_parent::parse(s).has_value(); }

/// A comma-separated tracestate with n members k0=v0, k1=v1, ...
std::string members(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    if (i != 0) out += ',';
    out += "k" + std::to_string(i) + "=v" + std::to_string(i);
  }
  return out;
}

using headers = std::map<std::string, std::string>;

baton::header_getter getter_of(const headers& h) {
  return [&h](std::string_view name) -> std::optional<std::string_view> {
    const auto it = h.find(std::string(name));
    if (it == h.end()) return std::nullopt;
    return std::string_view(it->second);
  };
}

}  // namespace

static_assert(baton::header_map<std::map<std::string, std::string>>);
static_assert(baton::header_map<std::unordered_map<std::string, std::string>>);
static_assert(baton::header_range<std::vector<std::pair<std::string, std::string>>>);
static_assert(!baton::header_map<std::vector<std::pair<std::string, std::string>>>);
static_assert(!baton::header_range<std::vector<std::string>>);

TEST_SUITE("trace_parent") {
  TEST_CASE("the specification's example parses into its ids and a sampled flag") {
    const auto tp = trace_parent::parse(spec_parent);
    REQUIRE(tp);
    CHECK(tp->trace_id_hex() == tid);
    CHECK(tp->parent_id_hex() == pid);
    CHECK(tp->trace_id[0] == 0x4b);
    CHECK(tp->trace_id[15] == 0x36);
    CHECK(tp->parent_id[0] == 0x00);
    CHECK(tp->parent_id[7] == 0xb7);
    CHECK(tp->flags == 0x01);
    CHECK(tp->sampled());
    CHECK(tp->valid());
  }

  TEST_CASE("a version 00 header round-trips through to_string, sampled or not") {
    for (const char* flags : {"00", "01"}) {
      const std::string s = header("00", tid, pid, flags);
      const auto tp = trace_parent::parse(s);
      REQUIRE(tp);
      CHECK(tp->to_string() == s);
      CHECK(tp->sampled() == (std::string(flags) == "01"));
    }
  }

  TEST_CASE("leading and trailing spaces and tabs around the header are ignored") {
    for (const std::string pad : {" ", "\t", " \t ", "\t\t"}) {
      CHECK(trace_parent::parse(pad + spec_parent));
      CHECK(trace_parent::parse(spec_parent + pad));
      CHECK(trace_parent::parse(pad + spec_parent + pad));
    }
  }

  TEST_CASE("whitespace inside the header is rejected") {
    CHECK(rejected("00 -" + tid + "-" + pid + "-01"));
    CHECK(rejected("00- " + tid.substr(1) + "-" + pid + "-01"));
    CHECK(rejected(header("00", tid, pid, " 1")));
  }

  TEST_CASE("uppercase hex is rejected in every field") {
    CHECK(rejected(header("00", "4BF92F3577B34DA6A3CE929D0E0E4736", pid, "01")));
    CHECK(rejected(header("00", "4bf92f3577b34da6a3ce929d0e0e473A", pid, "01")));
    CHECK(rejected(header("00", tid, "00F067AA0BA902B7", "01")));
    CHECK(rejected(header("00", tid, pid, "0A")));
    CHECK(rejected(header("0A", tid, pid, "01")));
    CHECK(trace_parent::parse(header("00", tid, pid, "0a")));  // the lowercase twin is fine
  }

  TEST_CASE("fields of the wrong length are rejected") {
    CHECK(rejected(header("0", tid, pid, "01")));
    CHECK(rejected(header("000", tid, pid, "01")));
    CHECK(rejected(header("00", tid.substr(1), pid, "01")));
    CHECK(rejected(header("00", tid + "a", pid, "01")));
    CHECK(rejected(header("00", tid, pid.substr(1), "01")));
    CHECK(rejected(header("00", tid, pid + "a", "01")));
    CHECK(rejected(header("00", tid, pid, "1")));
    CHECK(rejected(header("00", tid, pid, "001")));
    CHECK(rejected(""));
    CHECK(rejected("00"));
    CHECK(rejected("00-"));
  }

  TEST_CASE("an all-zero trace id or parent id is rejected") {
    CHECK(rejected(header("00", std::string(32, '0'), pid, "01")));
    CHECK(rejected(header("00", tid, std::string(16, '0'), "01")));
    CHECK(trace_parent::parse(header("00", std::string(31, '0') + "1", "000000000000000f", "00")));
  }

  TEST_CASE("characters that are not hex digits are rejected") {
    CHECK(rejected(header(".0", tid, pid, "01")));
    CHECK(rejected(header("0g", tid, pid, "01")));
    CHECK(rejected(header("00", "g" + tid.substr(1), pid, "01")));
    CHECK(rejected(header("00", tid.substr(1) + ".", pid, "01")));
    CHECK(rejected(header("00", tid, "." + pid.substr(1), "01")));
    CHECK(rejected(header("00", tid, pid, "0.")));
    CHECK(rejected(header("00", tid, pid, "-1")));
  }

  TEST_CASE("each of the 256 byte values is a trace id digit only when it is 0-9 or a-f") {
    for (int b = 0; b < 256; ++b) {
      std::string header = spec_parent;
      header[3] = static_cast<char>(b);  // the trace id's first digit (the rest is not zero)
      const bool hexdiglc = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f');
      CAPTURE(b);
      CHECK(trace_parent::parse(header).has_value() == hexdiglc);
    }
  }

  TEST_CASE("version ff is rejected, even when the rest is well formed") {
    CHECK(rejected(header("ff", tid, pid, "01")));
    CHECK(rejected(header("ff", tid, pid, "01") + "-more"));
  }

  TEST_CASE("separators other than a single dash are rejected") {
    CHECK(rejected("00_" + tid + "-" + pid + "-01"));
    CHECK(rejected("00-" + tid + "_" + pid + "-01"));
    CHECK(rejected("00-" + tid + "-" + pid + ":01"));
    CHECK(rejected("00--" + tid + "-" + pid + "-01"));
    CHECK(rejected("00" + tid + "-" + pid + "-01"));
  }

  TEST_CASE("version 00 rejects anything after the flags") {
    CHECK(rejected(std::string(spec_parent) + "-"));
    CHECK(rejected(std::string(spec_parent) + "-extension"));
    CHECK(rejected(std::string(spec_parent) + "."));
    CHECK(rejected(std::string(spec_parent) + "0"));
  }

  TEST_CASE("a later version parses when its first fields follow the 00 layout") {
    const auto plain = trace_parent::parse(header("cc", tid, pid, "01"));
    REQUIRE(plain);
    CHECK(plain->trace_id_hex() == tid);
    CHECK(plain->parent_id_hex() == pid);
    CHECK(plain->sampled());
    const auto extended = trace_parent::parse(header("01", tid, pid, "00") + "-a-future-field");
    REQUIRE(extended);
    CHECK(extended->trace_id_hex() == tid);
    CHECK_FALSE(extended->sampled());
    CHECK(trace_parent::parse(header("fe", tid, pid, "01") + "-"));
  }

  TEST_CASE("a later version is rejected when the flags are not followed by the end or a dash") {
    CHECK(rejected(header("cc", tid, pid, "01") + ".future"));
    CHECK(rejected(header("cc", tid, pid, "01") + "x"));
    CHECK(rejected(header("cc", tid, pid, "010")));
  }

  TEST_CASE("a later version still needs every field of the 00 layout to be valid") {
    CHECK(rejected(header("cc", tid.substr(1), pid, "01") + "-x"));
    CHECK(rejected(header("cc", tid, pid, "1")));
    CHECK(rejected(header("cc", std::string(32, '0'), pid, "01")));
    CHECK(rejected(header("cc", tid, pid, "0F")));
    CHECK(rejected(header("cc", tid, pid + "0", "01")));
  }

  TEST_CASE("a later version is written back as version 00") {
    const auto tp = trace_parent::parse(header("cc", tid, pid, "01") + "-ext");
    REQUIRE(tp);
    CHECK(tp->to_string() == spec_parent);
  }

  TEST_CASE("flags other than sampled are reserved, so parse clears them") {
    const auto three = trace_parent::parse(header("00", tid, pid, "03"));
    REQUIRE(three);
    CHECK(three->flags == 0x01);
    const auto two = trace_parent::parse(header("00", tid, pid, "02"));
    REQUIRE(two);
    CHECK(two->flags == 0x00);
    CHECK_FALSE(two->sampled());
    const auto ff = trace_parent::parse(header("00", tid, pid, "ff"));
    REQUIRE(ff);
    CHECK(ff->to_string() == header("00", tid, pid, "01"));
  }

  TEST_CASE("generate makes valid, distinct ids with the flags asked for") {
    const trace_parent a = trace_parent::generate();
    const trace_parent b = trace_parent::generate(trace_parent::sampled_flag);
    CHECK(a.valid());
    CHECK(b.valid());
    CHECK_FALSE(a.sampled());
    CHECK(b.sampled());
    CHECK(a.trace_id != b.trace_id);
    CHECK(a.parent_id != b.parent_id);
    const auto reparsed = trace_parent::parse(b.to_string());
    REQUIRE(reparsed);
    CHECK(*reparsed == b);
  }

  TEST_CASE("child keeps the trace id and flags and draws a new parent id") {
    const trace_parent parent = *trace_parent::parse(spec_parent);
    const trace_parent c = parent.child();
    CHECK(c.trace_id == parent.trace_id);
    CHECK(c.flags == parent.flags);
    CHECK(c.parent_id != parent.parent_id);
    CHECK(c.valid());
    CHECK(c.child().parent_id != c.parent_id);
  }

  TEST_CASE("ids generated on several threads at once never repeat") {
    std::mutex m;
    std::set<std::string> seen;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        std::vector<std::string> mine;
        for (int i = 0; i < 2000; ++i) mine.push_back(trace_parent::generate().to_string());
        std::lock_guard lock(m);
        seen.insert(mine.begin(), mine.end());
      });
    }
    for (auto& t : threads) t.join();
    CHECK(seen.size() == 8000);
  }

}  // TEST_SUITE

TEST_SUITE("trace_state") {
  TEST_CASE("the specification's two-vendor example keeps its order and values") {
    const auto ts = trace_state::parse("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    REQUIRE(ts);
    REQUIRE(ts->size() == 2);
    CHECK(ts->members()[0].key == "rojo");
    CHECK(ts->members()[1].key == "congo");
    CHECK(ts->get("rojo") == "00f067aa0ba902b7");
    CHECK(ts->get("congo") == "t61rcWkgMzE");
    CHECK_FALSE(ts->get("absent"));
    CHECK(ts->to_string() == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  }

  TEST_CASE("a vendor's put goes to the front, as when a second vendor joins the trace") {
    auto ts = trace_state::parse("congo=t61rcWkgMzE");
    REQUIRE(ts);
    ts->put("rojo", "00f067aa0ba902b7");
    CHECK(ts->to_string() == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  }

  TEST_CASE("updating a key moves it to the front with its new value") {
    auto ts = trace_state::parse("a=1,b=2,c=3");
    REQUIRE(ts);
    ts->put("c", "33");
    CHECK(ts->to_string() == "c=33,a=1,b=2");
    ts->put("a", "1");
    CHECK(ts->to_string() == "a=1,c=33,b=2");
    CHECK(ts->size() == 3);
  }

  TEST_CASE("spaces and tabs around members and empty members are ignored") {
    const auto ts = trace_state::parse(" \tfoo=1 \t , \t bar=2,\t\tbaz=3 , ,,");
    REQUIRE(ts);
    CHECK(ts->to_string() == "foo=1,bar=2,baz=3");
    const auto empty = trace_state::parse("");
    REQUIRE(empty);
    CHECK(empty->empty());
    const auto blank = trace_state::parse(" , \t ,");
    REQUIRE(blank);
    CHECK(blank->empty());
    CHECK(empty->to_string().empty());
  }

  TEST_CASE("a value keeps its leading spaces and inner spaces; trailing ones are whitespace") {
    const auto ts = trace_state::parse("k=  two words  ,j=x");
    REQUIRE(ts);
    CHECK(ts->get("k") == "  two words");
  }

  TEST_CASE("multi-tenant keys follow the tenant@system grammar and its length limits") {
    CHECK(trace_state::valid_key("tenant@system"));
    CHECK(trace_state::valid_key("1tenant@sys"));  // a tenant may start with a digit
    CHECK(trace_state::valid_key("t_-*/9@s_-*/9"));
    CHECK(trace_state::valid_key(std::string(241, 't') + "@" + std::string(14, 's')));
    CHECK_FALSE(trace_state::valid_key(std::string(242, 't') + "@s"));
    CHECK_FALSE(trace_state::valid_key("t@" + std::string(15, 's')));
    CHECK_FALSE(trace_state::valid_key("t@1sys"));  // a system starts with a letter
    CHECK_FALSE(trace_state::valid_key("@system"));
    CHECK_FALSE(trace_state::valid_key("tenant@"));
    CHECK_FALSE(trace_state::valid_key("a@@b"));
    CHECK_FALSE(trace_state::valid_key("a@b@c"));
    CHECK_FALSE(trace_state::valid_key("Tenant@sys"));
  }

  TEST_CASE("simple keys: a lowercase letter, then up to 255 key characters") {
    CHECK(trace_state::valid_key("a"));
    CHECK(trace_state::valid_key("abcdefghijklmnopqrstuvwxyz0123456789_-*/"));
    CHECK(trace_state::valid_key(std::string(256, 'z')));
    CHECK_FALSE(trace_state::valid_key(std::string(257, 'z')));
    CHECK_FALSE(trace_state::valid_key(""));
    CHECK_FALSE(trace_state::valid_key("1abc"));
    CHECK_FALSE(trace_state::valid_key("Foo"));
    CHECK_FALSE(trace_state::valid_key("foo.bar"));
    CHECK_FALSE(trace_state::valid_key("foo bar"));
    CHECK_FALSE(trace_state::valid_key("_foo"));
  }

  TEST_CASE("each of the 256 byte values is a key character only when the grammar has it") {
    for (int b = 0; b < 256; ++b) {
      const char c = static_cast<char>(b);
      const bool keychar = (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || c == '_' ||
                           c == '-' || c == '*' || c == '/';
      CAPTURE(b);
      CHECK(trace_state::valid_key(std::string("k") + c) == keychar);  // "k@": no system
    }
  }

  TEST_CASE("each of the 256 byte values is a value character only when the grammar has it") {
    for (int b = 0; b < 256; ++b) {
      const char c = static_cast<char>(b);
      const bool chr = b >= 0x20 && b <= 0x7e && c != ',' && c != '=';
      CAPTURE(b);
      CHECK(trace_state::valid_value(std::string("v") + c + "v") == chr);  // not last: ' ' is
    }
  }

  TEST_CASE("values: 1 to 256 printable characters without ',' or '=' and not ending in a space") {
    std::string every;
    for (char c = 0x20; c <= 0x7e; ++c) {
      if (c != ',' && c != '=') every += c;
    }
    CHECK(trace_state::valid_value(every));
    CHECK(trace_state::valid_value(std::string(256, 'v')));
    CHECK_FALSE(trace_state::valid_value(std::string(257, 'v')));
    CHECK_FALSE(trace_state::valid_value(""));
    CHECK_FALSE(trace_state::valid_value("a=b"));
    CHECK_FALSE(trace_state::valid_value("a,b"));
    CHECK_FALSE(trace_state::valid_value("ab "));
    CHECK_FALSE(trace_state::valid_value("a\tb"));
    CHECK_FALSE(trace_state::valid_value("a\x7f"));
    CHECK_FALSE(trace_state::valid_value("caf\xc3\xa9"));
    const auto ts = trace_state::parse("k=" + every);
    REQUIRE(ts);
    CHECK(ts->get("k") == every);
  }

  TEST_CASE("one invalid member discards the whole header") {
    CHECK_FALSE(trace_state::parse("good=1,FOO=2"));
    CHECK_FALSE(trace_state::parse("good=1,foo =2"));
    CHECK_FALSE(trace_state::parse("good=1,foo.bar=2"));
    CHECK_FALSE(trace_state::parse("foo@=1,bar=2"));
    CHECK_FALSE(trace_state::parse("@foo=1,bar=2"));
    CHECK_FALSE(trace_state::parse("foo@@bar=1,bar=2"));
    CHECK_FALSE(trace_state::parse("foo@bar@baz=1,bar=2"));
    CHECK_FALSE(trace_state::parse("foo=bar=baz"));
    CHECK_FALSE(trace_state::parse("foo=,bar=3"));
    CHECK_FALSE(trace_state::parse("novalue,bar=3"));
    CHECK_FALSE(trace_state::parse("=1"));
    CHECK_FALSE(trace_state::parse("good=1," + std::string(257, 'z') + "=1"));
    CHECK_FALSE(trace_state::parse("good=1,k=" + std::string(257, 'v')));
  }

  TEST_CASE("a repeated key discards the whole header") {
    CHECK_FALSE(trace_state::parse("foo=1,foo=1"));
    CHECK_FALSE(trace_state::parse("foo=1,bar=2,foo=3"));
    CHECK_FALSE(trace_state::parse("t@v=1,t@v=2"));
    CHECK(trace_state::parse("t@v=1,t@w=2,t=3"));  // different keys
  }

  TEST_CASE("32 members are accepted and a 33rd discards the header") {
    const auto full = trace_state::parse(members(32));
    REQUIRE(full);
    CHECK(full->size() == 32);
    CHECK(full->get("k31") == "v31");
    CHECK(trace_state::parse(members(32) + ", ,,"));  // empty members do not count
    CHECK_FALSE(trace_state::parse(members(33)));
  }

  TEST_CASE("put beyond 32 members drops the last one") {
    auto ts = trace_state::parse(members(32));
    REQUIRE(ts);
    ts->put("new", "x");
    CHECK(ts->size() == 32);
    CHECK(ts->members().front().key == "new");
    CHECK_FALSE(ts->get("k31"));
    CHECK(ts->get("k30") == "v30");
  }

  TEST_CASE("put refuses an invalid key or value and changes nothing") {
    auto ts = trace_state::parse("a=1");
    REQUIRE(ts);
    CHECK_THROWS_AS(ts->put("Bad", "x"), std::invalid_argument);
    CHECK_THROWS_AS(ts->put("a", "x=y"), std::invalid_argument);
    CHECK_THROWS_AS(ts->put("a", ""), std::invalid_argument);
    CHECK(ts->to_string() == "a=1");
  }

  TEST_CASE("erase removes a key and reports whether it was there") {
    auto ts = trace_state::parse("a=1,b=2,c=3");
    REQUIRE(ts);
    CHECK(ts->erase("b"));
    CHECK_FALSE(ts->erase("b"));
    CHECK(ts->to_string() == "a=1,c=3");
  }

  TEST_CASE("to_string then parse gives the same list") {
    trace_state ts;
    ts.put("z", "last");
    ts.put("tenant@vendor", " spaced value");
    ts.put("a", "first");
    const auto back = trace_state::parse(ts.to_string());
    REQUIRE(back);
    CHECK(*back == ts);
  }

}  // TEST_SUITE

TEST_SUITE("baggage") {
  TEST_CASE("the specification's example with properties and optional whitespace") {
    const baggage b = baggage::parse(
        "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue");
    REQUIRE(b.size() == 3);
    CHECK(b.get("key1") == "value1");
    CHECK(b.get("key2") == "value2");
    CHECK(b.get("key3") == "value3");
    CHECK(b.find("key1")->properties == "property1;property2");
    CHECK(b.find("key2")->properties.empty());
    CHECK(b.find("key3")->properties == "propertyKey=propertyValue");
    CHECK(b.to_string() ==
          "key1=value1;property1;property2,key2=value2,key3=value3;propertyKey=propertyValue");
  }

  TEST_CASE("percent-encoded values are decoded, and encoded again by to_string") {
    const std::string s = "userId=alice,serverNode=DF%2028,isProduction=false";
    const baggage b = baggage::parse(s);
    REQUIRE(b.size() == 3);
    CHECK(b.get("serverNode") == "DF 28");
    CHECK(b.get("userId") == "alice");
    CHECK(b.get("isProduction") == "false");
    CHECK(b.to_string() == s);
  }

  TEST_CASE("members split over several header fields join with commas") {
    const baggage b = baggage::parse("userId = alice , serverNode = DF%2028, isProduction = false");
    CHECK(b.size() == 3);
    CHECK(b.get("userId") == "alice");
    CHECK(b.get("serverNode") == "DF 28");
  }

  TEST_CASE("a value may contain '=' and may be empty") {
    const baggage b = baggage::parse("expr=a=b==c,empty=,also_empty= ;p");
    CHECK(b.get("expr") == "a=b==c");
    CHECK(b.get("empty") == "");
    CHECK(b.get("also_empty") == "");
    CHECK(b.find("also_empty")->properties == "p");
  }

  TEST_CASE("both hex cases decode; UTF-8 survives a round trip") {
    const baggage b = baggage::parse("city=Z%C3%BCrich,cafe=caf%c3%a9");
    CHECK(b.get("city") == "Z\xc3\xbcrich");
    CHECK(b.get("cafe") == "caf\xc3\xa9");
    CHECK(b.to_string() == "city=Z%C3%BCrich,cafe=caf%C3%A9");
  }

  TEST_CASE("to_string encodes every byte outside the value grammar, and '%'") {
    baggage b;
    CHECK(b.set("k", "a b,c;d%e\"f\\g\x7f\xc3\xa9"));
    CHECK(b.to_string() == "k=a%20b%2Cc%3Bd%25e%22f%5Cg%7F%C3%A9");
    CHECK(baggage::parse(b.to_string()) == b);
  }

  TEST_CASE("a member with bad percent-encoding is dropped, the others kept") {
    const baggage b = baggage::parse("a=1,bad=%zz,b=2,short=%4,end=x%,mixed=%4g,c=3");
    CHECK(b.to_string() == "a=1,b=2,c=3");
  }

  TEST_CASE("decoded bytes that are not UTF-8 become U+FFFD") {
    const std::string fffd = "\xef\xbf\xbd";
    CHECK(baggage::parse("k=%FF").get("k") == fffd);
    CHECK(baggage::parse("k=a%C3").get("k") == "a" + fffd);
    CHECK(baggage::parse("k=%E2%82x").get("k") == fffd + "x");  // one for the cut sequence
    CHECK(baggage::parse("k=%ED%A0%80").get("k") == fffd + fffd + fffd);  // a surrogate
    CHECK(baggage::parse("k=%C0%AF").get("k") == fffd + fffd);            // overlong
    CHECK(baggage::parse("k=%F0%9F%98%80").get("k") == "\xf0\x9f\x98\x80");
  }

  TEST_CASE("members that break the grammar are dropped one by one") {
    const baggage b = baggage::parse(
        "ok=1,noequals,ke y=v,k(=v,=v,sp=a b,q=\"x\",bs=a\\b,semi=v;,prop=v;p p,tab=\tv\t,ok2=2");
    CHECK(b.to_string() == "ok=1,tab=v,ok2=2");
  }

  TEST_CASE("keys are tokens and case-sensitive") {
    const baggage b = baggage::parse("Key=1,key=2,a.b-c_d!#$%&'*+^`|~=3");
    CHECK(b.size() == 3);
    CHECK(b.get("Key") == "1");
    CHECK(b.get("key") == "2");
    CHECK(b.get("a.b-c_d!#$%&'*+^`|~") == "3");
    CHECK(baggage::valid_key("user-id"));
    CHECK_FALSE(baggage::valid_key("user id"));
    CHECK_FALSE(baggage::valid_key("k=v"));
    CHECK_FALSE(baggage::valid_key(""));
  }

  TEST_CASE("a repeated key keeps the first position and the last value") {
    const baggage b = baggage::parse("k=1;p,other=x,k=2");
    REQUIRE(b.size() == 2);
    CHECK(b.members()[0].key == "k");
    CHECK(b.get("k") == "2");
    CHECK(b.find("k")->properties.empty());
    CHECK(b.to_string() == "k=2,other=x");
  }

  TEST_CASE("parse keeps the first 64 members and drops the rest") {
    std::string s;
    for (int i = 0; i < 70; ++i) s += (i ? "," : "") + ("k" + std::to_string(i)) + "=v";
    const baggage b = baggage::parse(s);
    CHECK(b.size() == baggage::max_members);
    CHECK(b.get("k63") == "v");
    CHECK_FALSE(b.get("k64"));
  }

  TEST_CASE("parse keeps the longest prefix within 8192 bytes") {
    const std::string big(4000, 'x');
    const baggage b = baggage::parse("a=" + big + ",b=" + big + ",c=" + big + ",d=1");
    CHECK(b.size() == 2);
    CHECK(b.get("b") == big);
    CHECK_FALSE(b.get("c"));
    CHECK_FALSE(b.get("d"));  // dropped too: only a prefix is kept
    CHECK(b.to_string().size() <= baggage::max_bytes);
  }

  TEST_CASE("set refuses to go past 64 members or 8192 bytes and changes nothing") {
    baggage b;
    for (int i = 0; i < 64; ++i) CHECK(b.set("k" + std::to_string(i), "v"));
    CHECK_FALSE(b.set("k64", "v"));
    CHECK(b.size() == 64);
    CHECK(b.set("k0", "updated"));  // an update does not add a member

    baggage sized;
    // "a=" + 8190 bytes is exactly 8192.
    CHECK(sized.set("a", std::string(8190, 'x')));
    CHECK(sized.to_string().size() == 8192);
    CHECK_FALSE(sized.set("b", ""));
    CHECK_FALSE(sized.set("a", std::string(8191, 'x')));
    CHECK_FALSE(sized.set("a", std::string(2731, ' ')));  // 3 bytes each once encoded
    CHECK(sized.set("a", std::string(2730, ' ')));
    CHECK(sized.to_string().size() == 2 + 2730 * 3);
  }

  TEST_CASE("the 8192-byte limit stays exact through erases and updates") {
    baggage b;
    CHECK(b.set("a", std::string(4000, 'x')));
    CHECK(b.set("b", std::string(4000, 'y')));       // 4002 + 1 + 4002 = 8005 bytes
    CHECK_FALSE(b.set("c", std::string(200, 'z')));  // would be 8208
    CHECK(b.erase("a"));                             // 4002
    CHECK(b.set("c", std::string(4187, 'z')));       // 4002 + 1 + 4189 = 8192
    CHECK(b.to_string().size() == 8192);
    CHECK_FALSE(b.set("d", ""));
    CHECK(b.set("b", "short"));                       // 7 + 1 + 4189 = 4197
    CHECK_FALSE(b.set("d", std::string(3993, 'w')));  // would be 8193
    CHECK(b.set("d", std::string(3992, 'w')));
    CHECK(b.to_string().size() == 8192);
    CHECK(b.erase("b"));
    CHECK(b.erase("c"));
    CHECK(b.erase("d"));
    CHECK(b.set("e", std::string(8190, 'v')));  // nothing left over from the erased members
    CHECK(b.to_string().size() == 8192);
  }

  TEST_CASE("set validates the key and the properties") {
    baggage b;
    CHECK_THROWS_AS(b.set("bad key", "v"), std::invalid_argument);
    CHECK_THROWS_AS(b.set("", "v"), std::invalid_argument);
    CHECK_THROWS_AS(b.set("k", "v", "p p"), std::invalid_argument);
    CHECK_THROWS_AS(b.set("k", "v", "p=a b"), std::invalid_argument);
    CHECK_THROWS_AS(b.set("k", "v", "p;"), std::invalid_argument);
    CHECK(b.empty());
    CHECK(b.set("k", "v", " p1 ; p2 = x "));
    CHECK(b.to_string() == "k=v;p1;p2=x");
  }

  TEST_CASE("set updates in place, appends new keys; erase removes") {
    baggage b = baggage::parse("a=1,b=2");
    CHECK(b.set("a", "10"));
    CHECK(b.set("c", "3"));
    CHECK(b.to_string() == "a=10,b=2,c=3");
    CHECK(b.erase("b"));
    CHECK_FALSE(b.erase("b"));
    CHECK(b.to_string() == "a=10,c=3");
  }

  TEST_CASE("each of the 256 byte values is a key or value byte only when the grammar has it") {
    for (int b = 0; b < 256; ++b) {
      const char c = static_cast<char>(b);
      // RFC 7230 tchar, for keys.
      const bool tchar = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') ||
                         (b >= 'A' && b <= 'Z') ||
                         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
      // baggage-octet: printable US-ASCII but SP, DQUOTE, ',', ';' and backslash. '%' is one,
      // but "v%v" is a bad percent-encoding, so that member is dropped too.
      const bool octet = b > 0x20 && b < 0x7f && c != '"' && c != ',' && c != ';' && c != '\\';
      CAPTURE(b);
      CHECK(baggage::valid_key(std::string("k") + c + "k") == tchar);
      // ',' and ';' end the value early; SP and HTAB inside it are not OWS.
      const std::string value = std::string("v") + c + "v";
      CHECK((baggage::parse("k=" + value).get("k") == value) == (octet && c != '%'));
    }
  }

  TEST_CASE("parse counts a copied member and a decoded one exactly against 8192 bytes") {
    // A copied member: "a=" and 8190 bytes is exactly 8192.
    CHECK(baggage::parse("a=" + std::string(8190, 'x')).to_string().size() == 8192);
    CHECK(baggage::parse("a=" + std::string(8191, 'x')).empty());
    // p=%41 decodes to "A", encoded "p=A" (3 bytes); with ",b=" and 8186 bytes: 8192.
    const baggage full = baggage::parse("p=%41,b=" + std::string(8186, 'y'));
    CHECK(full.size() == 2);
    CHECK(full.to_string().size() == 8192);
    CHECK(baggage::parse("p=%41,b=" + std::string(8187, 'y')).size() == 1);
    // What parse counted is what set() goes on from: no byte left over, then room once more.
    baggage b = full;
    CHECK_FALSE(b.set("c", ""));
    CHECK(b.erase("p"));
    CHECK(b.set("c", "1"));  // 8188 bytes of b, a comma and "c=1": 8192
    CHECK(b.to_string().size() == 8192);
    CHECK_FALSE(b.set("c", "12"));
  }

  TEST_CASE("a repeated key, plain after decoded, takes the plain value and drops the properties") {
    const baggage b = baggage::parse("k=%41;p=1,k=plain");
    REQUIRE(b.size() == 1);
    CHECK(b.get("k") == "plain");
    CHECK(b.find("k")->properties.empty());
    CHECK(b.to_string() == "k=plain");
  }

  TEST_CASE("an empty or blank header gives an empty baggage") {
    CHECK(baggage::parse("").empty());
    CHECK(baggage::parse(" , ,").empty());
    CHECK(baggage().to_string().empty());
  }

}  // TEST_SUITE

namespace {

/// Random list headers for the one-pass reading of tracestate and baggage. Each member is
/// mostly `key=value` of ordinary bytes, a piece in `special_one_in` one the grammars care about
/// ('@', '%41', '=', ';p', spaces, tabs, quotes, bytes over 0x7e), so that many headers are
/// valid and many are not; one member in five is any short run of such pieces.
class list_header_source {
 public:
  list_header_source(unsigned seed, std::size_t special_one_in)
      : rng_(seed), special_one_in_(special_one_in) {}

  /// The members of the next header, for join().
  std::vector<std::string> next() {
    std::vector<std::string> pieces(pick(7));
    for (auto& p : pieces) {
      if (pick(5) == 0) {
        p = run(pick(5), odd_pieces, odd_pieces);
      } else {
        p = run(1, letters, special_key_pieces) + run(pick(4), key_pieces, special_key_pieces) +
            "=" + run(1 + pick(4), value_pieces, special_value_pieces);
      }
    }
    return pieces;
  }

  static std::string join(const std::vector<std::string>& pieces, const std::string& before,
                          const std::string& after) {
    std::string out;
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      if (i != 0) out += ',';
      out += before + pieces[i] + after;
    }
    return out;
  }

 private:
  using piece_list = std::vector<std::string_view>;
  inline static const piece_list letters = {"a", "b", "k", "z"};  // what a key starts with
  inline static const piece_list key_pieces = {"a", "b", "z", "k", "0", "9", "_", "-", "*", "/"};
  inline static const piece_list special_key_pieces = {"@", "A", "%", "!", ".", " "};
  inline static const piece_list value_pieces = {"a", "Z", "0", "~", "/", "v", "w", "x"};
  inline static const piece_list special_value_pieces = {
      "%41", "%e2%82%ac", " ", "=", ";p", "\t", "\"", "\x7f", "\xc3\xa9", "%", "@"};
  inline static const piece_list odd_pieces = {"a", "=", ";", "%", " ", "\t", "@", "\"", "0"};

  std::size_t pick(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }
  /// n pieces, each from `special` one time in special_one_in_, else from `ordinary`.
  std::string run(std::size_t n, const piece_list& ordinary, const piece_list& special) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
      const piece_list& from = pick(special_one_in_) == 0 ? special : ordinary;
      out += from[pick(from.size())];
    }
    return out;
  }

  std::mt19937 rng_;
  std::size_t special_one_in_;
};

}  // namespace

// Both lists read a member in the usual form (`key=value`, no whitespace around it) in one
// pass over its bytes, and any other member by splitting and trimming it. A member with
// whitespace around it always takes the second way, so the same header with whitespace around
// each member must read the same.
TEST_SUITE("list headers read in one pass") {
  TEST_CASE("tracestate: 20,000 random headers read the same with whitespace around members") {
    list_header_source source(7, 16);
    int accepted = 0;
    int members_read = 0;
    for (int i = 0; i < 20000; ++i) {
      const std::vector<std::string> pieces = source.next();
      const std::string bare = list_header_source::join(pieces, "", "");
      const std::string spaced = list_header_source::join(pieces, " ", "\t");
      const std::optional<trace_state> a = trace_state::parse(bare);
      const std::optional<trace_state> b = trace_state::parse(spaced);
      REQUIRE_MESSAGE(a == b, "header: '", bare, "'");
      if (a) {
        ++accepted;
        members_read += static_cast<int>(a->size());
      }
    }
    // Not vacuous: many headers are accepted, with members, and many are refused.
    CHECK(accepted > 2000);
    CHECK(accepted < 18000);
    CHECK(members_read > 2000);
  }

  TEST_CASE("baggage: 20,000 random headers read the same with whitespace around members") {
    list_header_source source(11, 4);
    int members_read = 0;
    int decoded = 0;
    int with_properties = 0;
    for (int i = 0; i < 20000; ++i) {
      const std::vector<std::string> pieces = source.next();
      const std::string bare = list_header_source::join(pieces, "", "");
      const std::string spaced = list_header_source::join(pieces, "\t", " ");
      const baggage a = baggage::parse(bare);
      const baggage b = baggage::parse(spaced);
      REQUIRE_MESSAGE(a == b, "header: '", bare, "'");
      REQUIRE(a.to_string() == b.to_string());
      members_read += static_cast<int>(a.size());
      for (const auto& m : a.members()) {
        // Only "%41" puts an 'A' in a value, and only ";p" gives properties.
        if (m.value.find('A') != std::string::npos) ++decoded;
        if (!m.properties.empty()) ++with_properties;
      }
    }
    CHECK(members_read > 10000);
    CHECK(decoded > 500);
    CHECK(with_properties > 500);
  }

  TEST_CASE("a parsed list is allocated once, for as many members as the header has commas") {
    // Lists of 1 to 30 members, so that the commas fall at every offset within eight bytes.
    std::string ts_header;
    std::string bag_header;
    for (std::size_t n = 1; n <= 30; ++n) {
      if (n > 1) {
        ts_header += ',';
        bag_header += ',';
      }
      ts_header += "k" + std::to_string(n) + "=v";
      bag_header +=
          "key" + std::string(n % 5, 'x') + std::to_string(n) + "=" + std::string(n % 3, 'v');
      const std::optional<trace_state> ts = trace_state::parse(ts_header);
      REQUIRE(ts);
      CHECK(ts->size() == n);
      CHECK(ts->members().capacity() == n);
      const baggage b = baggage::parse(bag_header);
      CHECK(b.size() == n);
      CHECK(b.members().capacity() == n);
    }
    CHECK(baggage::parse(",,a=1,,").members().capacity() == 5);  // empty members count too
    CHECK(baggage::parse(std::string(200, ',')).members().capacity() == baggage::max_members);
  }

  TEST_CASE("members in the usual form and others read in order in one header") {
    const baggage b = baggage::parse("a=1, b = 2 ,c=3;p,d=%41,e=,=f,g=h i,j=k");
    REQUIRE(b.size() == 6);
    CHECK(b.members()[0] == baggage::member{"a", "1", ""});
    CHECK(b.members()[1] == baggage::member{"b", "2", ""});
    CHECK(b.members()[2] == baggage::member{"c", "3", "p"});
    CHECK(b.members()[3] == baggage::member{"d", "A", ""});
    CHECK(b.members()[4] == baggage::member{"e", "", ""});
    CHECK(b.members()[5] == baggage::member{"j", "k", ""});  // "=f" and "g=h i" dropped

    const std::optional<trace_state> ts = trace_state::parse("a=1, b=2 ,c@d=x y,e=3");
    REQUIRE(ts);
    REQUIRE(ts->size() == 4);
    CHECK(ts->members()[2] == trace_state::member{"c@d", "x y"});
    CHECK_FALSE(trace_state::parse("a=1,b=,c=3"));           // an empty value
    CHECK_FALSE(trace_state::parse("a=1,=,c=3"));            // a member of '=' alone
    CHECK_FALSE(trace_state::parse("a=1,B=2"));              // an uppercase key
    CHECK_FALSE(trace_state::parse("a=1,b=x\ty"));           // a tab inside a value
    CHECK(trace_state::parse("a=1,b=x ")->get("b") == "x");  // a trailing space is whitespace
  }
}  // TEST_SUITE

TEST_SUITE("trace context propagation") {
  TEST_CASE("extract sets the three values in the current context") {
    context().run([] {
      const headers h{{"traceparent", spec_parent},
                      {"tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"},
                      {"baggage", "userId=alice,serverNode=DF%2028"}};
      (void)baton::extract(getter_of(h));
      REQUIRE(baton::current_trace());
      CHECK(baton::current_trace()->to_string() == spec_parent);
      CHECK(baton::current_trace_state().get("congo") == "t61rcWkgMzE");
      CHECK(baton::current_baggage().get("serverNode") == "DF 28");
    });
  }

  TEST_CASE("values extracted in one context are invisible in another") {
    context a;
    a.run([] { (void)baton::extract(headers{{"traceparent", spec_parent}, {"baggage", "k=v"}}); });
    context().run([] {
      CHECK_FALSE(baton::current_trace());
      CHECK(baton::current_trace_state().empty());
      CHECK(baton::current_baggage().empty());
    });
    const auto in_a = a.get(baton::trace_parent_var());  // optional<optional<trace_parent>>
    REQUIRE(in_a);
    CHECK(*in_a == trace_parent::parse(spec_parent));
    CHECK(a.get(baton::baggage_var())->get("k") == "v");
  }

  TEST_CASE("a copy of the context carries the values, and later changes stay apart") {
    context().run([] {
      (void)baton::extract(headers{{"traceparent", spec_parent}, {"tracestate", "a=1"}});
      context snapshot = baton::copy_context();
      (void)baton::start_span();
      snapshot.run([] {
        CHECK(baton::current_trace()->to_string() == spec_parent);
        CHECK(baton::current_trace_state().to_string() == "a=1");
      });
      CHECK(baton::current_trace()->to_string() != spec_parent);
    });
  }

  TEST_CASE("missing or invalid headers are set as absent, hiding earlier values") {
    context().run([] {
      (void)baton::extract(headers{{"traceparent", spec_parent}, {"baggage", "k=v"}});
      const baton::trace_tokens t = baton::extract(headers{{"traceparent", "garbage"}});
      CHECK_FALSE(baton::current_trace());
      CHECK(baton::current_baggage().empty());
      t.reset();
      CHECK(baton::current_trace()->to_string() == spec_parent);
      CHECK(baton::current_baggage().get("k") == "v");
    });
  }

  TEST_CASE("tracestate is ignored without a valid traceparent; baggage is not") {
    context().run([] {
      (void)baton::extract(headers{{"traceparent", header("00", std::string(32, '0'), pid, "01")},
                                   {"tracestate", "a=1"},
                                   {"baggage", "k=v"}});
      CHECK_FALSE(baton::current_trace());
      CHECK(baton::current_trace_state().empty());
      CHECK(baton::current_baggage().get("k") == "v");
    });
  }

  TEST_CASE("an invalid tracestate is dropped whole and keeps the traceparent") {
    context().run([] {
      (void)baton::extract(headers{{"traceparent", spec_parent}, {"tracestate", "a=1,a=2"}});
      CHECK(baton::current_trace());
      CHECK(baton::current_trace_state().empty());
    });
  }

  TEST_CASE("carrier names match in any case") {
    context().run([] {
      (void)baton::extract(headers{{"TraceParent", spec_parent},
                                   {"TRACESTATE", "a=1"},
                                   {"BaGgAgE", "k=v"},
                                   {"trace-parent", "ignored"}});
      CHECK(baton::current_trace());
      CHECK(baton::current_trace_state().get("a") == "1");
      CHECK(baton::current_baggage().get("k") == "v");
    });
  }

  TEST_CASE("two traceparent fields count as none; repeated list fields are joined in order") {
    context().run([] {
      const std::vector<std::pair<std::string, std::string>> fields{
          {"traceparent", spec_parent},
          {"Traceparent", header("00", tid, "1234567890abcdef", "01")},
          {"baggage", "a=1"},
          {"Baggage", "b=2"}};
      (void)baton::extract(fields);
      CHECK_FALSE(baton::current_trace());
      CHECK(baton::current_baggage().to_string() == "a=1,b=2");
    });
    context().run([] {
      const std::vector<std::pair<std::string, std::string>> fields{{"traceparent", spec_parent},
                                                                    {"tracestate", "foo=1,bar=2"},
                                                                    {"tracestate", ""},
                                                                    {"tracestate", "rojo=1"}};
      (void)baton::extract(fields);
      CHECK(baton::current_trace_state().to_string() == "foo=1,bar=2,rojo=1");
    });
    context().run([] {
      const std::vector<std::pair<std::string, std::string>> fields{
          {"traceparent", spec_parent}, {"tracestate", "foo=1"}, {"TraceState", "foo=2"}};
      (void)baton::extract(fields);
      CHECK(baton::current_trace_state().empty());  // a key repeated across fields
    });
  }

  TEST_CASE("inject writes the current values as-is under lowercase names") {
    context().run([] {
      (void)baton::extract(headers{{"traceparent", spec_parent},
                                   {"tracestate", "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"},
                                   {"baggage", "serverNode = DF%2028"}});
      std::vector<std::pair<std::string, std::string>> out;
      baton::inject([&](std::string_view name, std::string value) {
        out.emplace_back(std::string(name), std::move(value));
      });
      const std::vector<std::pair<std::string, std::string>> expected{
          {"traceparent", spec_parent},
          {"tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"},
          {"baggage", "serverNode=DF%2028"}};
      CHECK(out == expected);
    });
  }

  TEST_CASE("inject writes nothing from an empty context, and no tracestate without a trace") {
    context().run([] {
      int calls = 0;
      baton::inject([&](std::string_view, std::string) { ++calls; });
      CHECK(calls == 0);
      trace_state ts;
      ts.put("a", "1");
      (void)baton::trace_state_var().set(ts);
      baton::inject([&](std::string_view, std::string) { ++calls; });
      CHECK(calls == 0);
    });
  }

  TEST_CASE("inject into a map replaces old trace headers in any case and keeps the rest") {
    context().run([] {
      (void)baton::extract(headers{{"traceparent", spec_parent}});
      headers out{{"Traceparent", "stale"}, {"BAGGAGE", "stale=1"}, {"content-type", "text/plain"}};
      baton::inject(out);
      const headers expected{{"content-type", "text/plain"}, {"traceparent", spec_parent}};
      CHECK(out == expected);
    });
  }

  TEST_CASE("start_span sets a child of the current trace, and its token undoes it") {
    context().run([] {
      (void)baton::extract(headers{{"traceparent", spec_parent}});
      const auto span = baton::start_span();
      const auto now = baton::current_trace();
      REQUIRE(now);
      CHECK(now->trace_id_hex() == tid);
      CHECK(now->parent_id_hex() != pid);
      CHECK(now->sampled());
      CHECK(span.old_value() == trace_parent::parse(spec_parent));
      baton::trace_parent_var().reset(span);
      CHECK(baton::current_trace()->to_string() == spec_parent);
    });
  }

  TEST_CASE("start_span without a current trace starts a new one") {
    context().run([] {
      (void)baton::start_span();
      const auto now = baton::current_trace();
      REQUIRE(now);
      CHECK(now->valid());
      CHECK_FALSE(now->sampled());
    });
  }

  TEST_CASE("extract, start_span, inject: the outgoing call names this service's span") {
    context().run([] {
      const headers in{{"traceparent", spec_parent},
                       {"tracestate", "congo=t61rcWkgMzE"},
                       {"baggage", "userId=alice"}};
      (void)baton::extract(in);
      (void)baton::start_span();
      headers out;
      baton::inject(out);
      const auto sent = trace_parent::parse(out.at("traceparent"));
      REQUIRE(sent);
      CHECK(sent->trace_id_hex() == tid);
      CHECK(sent->parent_id == baton::current_trace()->parent_id);
      CHECK(sent->parent_id_hex() != pid);
      CHECK(out.at("tracestate") == "congo=t61rcWkgMzE");
      CHECK(out.at("baggage") == "userId=alice");
    });
  }

  TEST_CASE("a spawned task and to_thread work see the trace of the task that started them") {
    using baton::task;
    baton_test::run_task([]() -> task<> {
      (void)baton::extract(headers{{"traceparent", spec_parent}, {"baggage", "k=v"}});
      auto child = baton::spawn(
          []() -> task<std::string> { co_return baton::current_trace()->to_string(); }());
      (void)baton::start_span();  // after the spawn: the child's copy does not see it
      CHECK(co_await child == spec_parent);
      const std::string in_thread =
          co_await baton::to_thread([] { return baton::current_baggage().to_string(); });
      CHECK(in_thread == "k=v");
    });
  }

}  // TEST_SUITE
