// SPDX-License-Identifier: BSL-1.0
// The flagship service under hostile input: each case starts build/samples/http_service on
// loopback, sends raw bytes and checks the status, the connection's fate, and that the service
// keeps serving.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/src.hpp>  // Boost.JSON header-only: its compiled part
#include <boost/json/value.hpp>
#include <sqlite3.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string service_binary;  // the first argument that is not an option (tests/meson.build)

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return s;
}

/// The service in a child process: port 0, a fresh folder for its database and log file.
class service {
 public:
  /// `args` are added to the defaults; `max_files`, when not 0, is RLIMIT_NOFILE (soft and
  /// hard); `db` empty: notes.db in the folder.
  explicit service(std::vector<std::string> args_ = {}, rlim_t max_files = 0, fs::path db_ = {}) {
    std::string dir_template = (fs::temp_directory_path() / "baton-http-test-XXXXXX").string();
    if (::mkdtemp(dir_template.data()) == nullptr) throw std::runtime_error("mkdtemp");
    dir_ = dir_template;
    const fs::path db = db_.empty() ? dir_ / "notes.db" : db_;
    std::vector<std::string> args = {service_binary, "--port",     "0",
                                     "--threads",    "2",          "--db",
                                     db.string(),    "--log-file", log_file().string()};
    args.insert(args.end(), args_.begin(), args_.end());
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    const std::string err = (dir_ / "stderr").string();
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {  // the child: async-signal-safe calls only, then exec
      if (max_files != 0) {
        const rlimit r{max_files, max_files};
        ::setrlimit(RLIMIT_NOFILE, &r);
      }
      ::dup2(out[1], 1);
      const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (e >= 0) ::dup2(e, 2);
      ::close(out[0]);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    // `http_service: listening on http://127.0.0.1:P`
    std::string said;
    char buf[256];
    while (said.find('\n') == std::string::npos) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 30'000) <= 0) break;
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      said.append(buf, static_cast<std::size_t>(n));
    }
    ::close(out[0]);
    const auto at = said.find("127.0.0.1:");
    if (at == std::string::npos) {
      kill_now();
      throw std::runtime_error("the service did not start: " + said + " " + read(dir_ / "stderr"));
    }
    port_ = static_cast<unsigned short>(std::stoi(said.substr(at + 10)));
  }

  ~service() {
    if (pid_ > 0) kill_now();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  unsigned short port() const { return port_; }
  pid_t pid() const { return pid_; }
  fs::path folder() const { return dir_; }
  fs::path log_file() const { return dir_ / "service.log"; }
  std::string log() const { return read(log_file()); }
  /// What the service wrote to stderr (a sanitizer's report, a crash's message).
  std::string errors() const { return read(dir_ / "stderr"); }

  /// The exit status a service gets from terminate() when it is still running `limit` after
  /// SIGTERM (it is then killed).
  static constexpr int did_not_exit = -1;
  /// How long terminate() waits for the service to exit unless told otherwise.
  static constexpr std::chrono::seconds shutdown_limit{60};

  /// SIGTERM, then the exit status (128 + signal when a signal ended it), or did_not_exit when
  /// the service is still running after `limit`: a shutdown that hangs fails its check with
  /// that, not the whole test binary at meson's timeout.
  int terminate(std::chrono::milliseconds limit = shutdown_limit) {
    // A pidfd polls readable once the process has exited (Linux 5.3).
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    ::kill(pid_, SIGTERM);
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      int ready = 0;
      while ((ready = ::poll(&p, 1, static_cast<int>(limit.count()))) < 0 && errno == EINTR) {
      }
      ::close(pidfd);
      if (ready == 0) {
        kill_now();
        return did_not_exit;
      }
    }
    return reap();
  }
  void kill_now() {
    ::kill(pid_, SIGKILL);
    reap();
  }

 private:
  int reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  static std::string read(const fs::path& f) {
    std::ifstream in(f, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  fs::path dir_;
  pid_t pid_ = -1;
  unsigned short port_ = 0;
};

/// SIGTERM, then checks that the service exited 0; when it did not, the check shows the end of
/// what the service wrote to stderr.
void check_exits_cleanly(service& s) {
  const int status = s.terminate();
  const std::string err = s.errors();
  CHECK_MESSAGE(status == 0,
                (status == service::did_not_exit
                     ? "still running " + std::to_string(service::shutdown_limit.count()) +
                           " s after SIGTERM (killed)"
                     : "exit status " + std::to_string(status))
                    << "; stderr ends with:\n"
                    << err.substr(err.size() > 4000 ? err.size() - 4000 : 0));
}

struct reply {
  int status = 0;
  std::string version;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;

  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  bool says_close() const { return lower(header("connection")) == "close"; }
};

/// What happened to a connection: the service closed it (FIN or RST), it is still open after
/// the wait, or more bytes came.
enum class fate { closed, open, more_data };

/// A blocking client socket whose reads wait at most a given time (poll), never forever.
class client {
 public:
  /// Connects within `limit` (std::runtime_error otherwise). The connect itself is bounded
  /// too: a blocking connect() to a listener whose backlog is full retries its SYN for about
  /// two minutes.
  explicit client(unsigned short port, std::chrono::milliseconds limit = 20s) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int error = 0;
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      error = errno;
      if (error == EINPROGRESS) {
        pollfd p{fd_, POLLOUT, 0};
        int ready = 0;
        while ((ready = ::poll(&p, 1, static_cast<int>(limit.count()))) < 0 && errno == EINTR) {
        }
        if (ready == 0) {
          error = ETIMEDOUT;
        } else {
          socklen_t len = sizeof error;  // the connect's outcome: 0 when it succeeded
          if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
        }
      }
    }
    if (error != 0) {
      ::close(fd_);
      throw std::runtime_error(std::string("connect: ") + std::strerror(error));
    }
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);  // reads and writes block
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~client() {
    if (fd_ >= 0) ::close(fd_);
  }
  client(client&& o) noexcept : fd_(std::exchange(o.fd_, -1)), in_(std::move(o.in_)) {}
  client& operator=(client&&) = delete;

  /// Sends everything it can; false when the service closed the connection meanwhile.
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// One response (the service always sends Content-Length), nullopt when the connection
  /// ended first or nothing complete came within `limit`.
  std::optional<reply> read_reply(std::chrono::milliseconds limit = 20s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    std::size_t end;
    while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(until)) return std::nullopt;
    }
    reply r;
    std::istringstream head(in_.substr(0, end));
    std::string line;
    std::getline(head, line);
    std::istringstream status_line(line);
    status_line >> r.version >> r.status;
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      r.headers[lower(line.substr(0, colon))] = value;
    }
    const std::size_t length =
        r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    while (in_.size() < end + 4 + length) {
      if (!fill(until)) return std::nullopt;
    }
    r.body = in_.substr(end + 4, length);
    in_.erase(0, end + 4 + length);
    return r;
  }

  /// Waits up to `limit` for the service to close the connection.
  fate wait_closed(std::chrono::milliseconds limit = 20s) {
    if (!in_.empty()) return fate::more_data;
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) {
        return fate::open;
      }
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fate::closed;  // FIN, or a reset
      return fate::more_data;
    }
  }

  int fd() const { return fd_; }

 private:
  bool fill(std::chrono::steady_clock::time_point until) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    pollfd p{fd_, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    in_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string in_;  // received, not yet returned
};

std::string get(std::string_view target, std::string_view headers = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + std::string(headers) +
         "\r\n";
}

std::string post(std::string_view target, std::string_view body, std::string_view headers = "") {
  return "POST " + std::string(target) +
         " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         std::string(headers) + "\r\n" + std::string(body);
}

/// Sends `bytes` on a new connection and reads one response.
std::optional<reply> send_once(const service& s, std::string_view bytes) {
  client c(s.port());
  c.send(bytes);
  return c.read_reply();
}

/// The service still answers a normal request on a new connection.
bool serving(const service& s) {
  const auto r = send_once(s, get("/healthz"));
  return r && r->status == 200 && r->body == "ok\n";
}

/// Sends `bytes`; the answer must be `status` with Connection: close, and then the connection
/// must close without another response.
void expect_refused_and_closed(const service& s, const std::string& bytes, int status) {
  client c(s.port());
  c.send(bytes);
  const auto r = c.read_reply();
  REQUIRE_MESSAGE(r.has_value(), "no response");
  CHECK(r->status == status);
  CHECK(r->says_close());
  CHECK(c.wait_closed() == fate::closed);
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80           ? 1
                          : (c >> 5) == 0x6  ? 2
                          : (c >> 4) == 0xe  ? 3
                          : (c >> 3) == 0x1e ? 4
                                             : 0;
    if (n == 0 || i + n > s.size()) return false;
    unsigned cp = n == 1 ? c : c & (0x7fu >> n);
    for (std::size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 2) return false;
      cp = (cp << 6) | (d & 0x3fu);
    }
    const unsigned least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n;
  }
  return true;
}

/// A JSON body the strictest reader accepts: valid UTF-8 (Boost.JSON checks it by default).
std::optional<boost::json::value> strict_json(const std::string& body) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec || !valid_utf8(body)) return std::nullopt;
  return v;
}

/// The `[k=v k="v w" ...]` fields of a log line, split outside quotes and unescaped; nullopt
/// when the line has no such prefix.
std::optional<std::vector<std::pair<std::string, std::string>>> log_fields(std::string_view line) {
  const auto open = line.find(" [");
  if (open == std::string_view::npos) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> fields;
  std::size_t i = open + 2;
  while (i < line.size() && line[i] != ']') {
    const auto eq = line.find('=', i);
    if (eq == std::string_view::npos) return std::nullopt;
    std::string label(line.substr(i, eq - i));
    std::string value;
    i = eq + 1;
    if (i < line.size() && line[i] == '"') {
      for (++i; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] == '\\') ++i;  // the escaped character (its escape letter is enough here)
        value.push_back(line[i]);
      }
      ++i;
    } else {
      while (i < line.size() && line[i] != ' ' && line[i] != ']') value.push_back(line[i++]);
    }
    fields.emplace_back(std::move(label), std::move(value));
    if (i < line.size() && line[i] == ' ') ++i;
  }
  if (i >= line.size()) return std::nullopt;
  return fields;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

// ---- message framing (RFC 9112) ---------------------------------------------------------

TEST_CASE(
    "a Transfer-Encoding whose final coding is not chunked is a 400 and the connection "
    "closes: the body is never served as a request") {
  service s;
  const std::string smuggled = "GET /hello HTTP/1.1\r\nHost: x\r\nX-User: smuggled\r\n\r\n";
  for (const char* coding : {"xchunked", "chunked, identity", "identity", "chunked;q=1, gzip"}) {
    CAPTURE(coding);
    expect_refused_and_closed(s,
                              "POST /notes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " +
                                  std::string(coding) + "\r\nX-User: a\r\n\r\n" + smuggled,
                              400);
  }
  CHECK(serving(s));
}

TEST_CASE("chunked twice is a 400, and a coding before chunked that the service lacks a 501") {
  service s;
  expect_refused_and_closed(s,
                            "POST /notes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                            400);
  expect_refused_and_closed(
      s, "POST /notes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
      501);
  CHECK(serving(s));
}

TEST_CASE(
    "Transfer-Encoding together with Content-Length is a 400 and the connection closes, "
    "in either order and whatever the coding") {
  service s;
  const std::string body = "5\r\nhello\r\n0\r\n\r\n";
  for (const char* fields : {"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                             "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                             "Content-Length: 15\r\nTransfer-Encoding: identity\r\n",
                             "Transfer-Encoding: xchunked\r\nContent-Length: 15\r\n"}) {
    CAPTURE(fields);
    expect_refused_and_closed(
        s, "POST /notes HTTP/1.1\r\nHost: x\r\n" + std::string(fields) + "X-User: a\r\n\r\n" + body,
        400);
  }
  CHECK(serving(s));
}

TEST_CASE("an HTTP/1.0 request with Transfer-Encoding is a 400 and the connection closes") {
  service s;
  expect_refused_and_closed(s,
                            "POST /notes HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                            "X-User: a\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                            400);
  CHECK(serving(s));
}

TEST_CASE("a chunked note is stored and the connection stays open") {
  service s;
  client c(s.port());
  c.send(
      "POST /notes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-User: ada\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  const auto r = c.read_reply();
  REQUIRE(r);
  CHECK(r->status == 201);
  CHECK_FALSE(r->says_close());
  c.send(get("/notes", "X-User: ada\r\n"));
  const auto listed = c.read_reply();
  REQUIRE(listed);
  CHECK(listed->body.find("\"text\":\"hello world\"") != std::string::npos);
}

TEST_CASE("an HTTP/1.1 request without Host, or with two, is a 400; HTTP/1.0 may omit it") {
  service s;
  expect_refused_and_closed(s, "GET /hello HTTP/1.1\r\n\r\n", 400);
  expect_refused_and_closed(s, "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
  expect_refused_and_closed(s, "GET /hello HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400);
  expect_refused_and_closed(s, "GET /hello HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
  expect_refused_and_closed(s, "GET /hello HTTP/1.1\r\nHost: user@a\r\n\r\n", 400);
  const auto old = send_once(s, "GET /hello HTTP/1.0\r\n\r\n");
  REQUIRE(old);
  CHECK(old->status == 200);
  CHECK(old->version == "HTTP/1.0");
  const auto empty_host = send_once(s, "GET /hello HTTP/1.1\r\nHost:\r\n\r\n");
  REQUIRE(empty_host);
  CHECK(empty_host->status == 200);
  CHECK(serving(s));
}

TEST_CASE("malformed request lines and fields get a 4xx and a closed connection, one by one") {
  service s;
  const std::vector<std::string> cases = {
      "BAD REQUEST LINE\r\n\r\n",
      "GET /hello HTTP/2.0\r\nHost: a\r\n\r\n",
      "GET /hello HTTP/1.1\nHost: a\n\n",                   // bare LF
      "GET /hello HTTP/1.1\r\nHost : a\r\n\r\n",            // space before colon
      "GET /hello HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n",  // a control in a value
      "GET /hello HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
      "GET /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      "GET /he\xffllo HTTP/1.1\r\nHost: a\r\n\r\n",  // a raw byte in the target
      "GET /he%ffllo HTTP/1.1\r\nHost: a\r\n\r\n",   // decodes to invalid UTF-8
      "GET hello HTTP/1.1\r\nHost: a\r\n\r\n",       // no form the server serves
      "GET ftp://a/hello HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n",
      std::string("GET /hello HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 40),
  };
  for (const std::string& bytes : cases) {
    CAPTURE(bytes);
    client c(s.port());
    c.send(bytes);
    const auto r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status >= 400);
    CHECK(r->status < 500);
    CHECK(r->says_close());
    CHECK(c.wait_closed() == fate::closed);
    CHECK(strict_json(r->body).has_value());
  }
  CHECK(serving(s));
}

TEST_CASE("the target is parsed by Boost.URL: percent-decoded query, absolute-form by path") {
  service s;
  const auto decoded = send_once(s, get("/slow?ms=%31%30&x=%e2%82%ac", "X-Deadline-Ms: 5000\r\n"));
  REQUIRE(decoded);
  CHECK(decoded->status == 200);
  CHECK(decoded->body == "{\"slept_ms\":10}\n");
  const auto absolute = send_once(s, "GET http://example.com/hello HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(absolute);
  CHECK(absolute->status == 200);
  const auto encoded_path = send_once(s, get("/hel%6co"));
  REQUIRE(encoded_path);
  CHECK(encoded_path->status == 200);
  const auto not_a_number = send_once(s, get("/slow?ms=%ff"));
  REQUIRE(not_a_number);
  CHECK(not_a_number->status == 400);
  CHECK(strict_json(not_a_number->body).has_value());
}

// ---- UTF-8 in and out ---------------------------------------------------------------------

TEST_CASE("a note that is not valid UTF-8, or holds control characters, is a 400 and not stored") {
  service s;
  client c(s.port());
  for (const std::string& body : {std::string("\xff\xfe\xc3\x28"), std::string(100, '\x01'),
                                  std::string("ab\xed\xa0\x80"), std::string("a\x7f")}) {
    c.send(post("/notes", body, "X-User: ada\r\n"));
    const auto r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK_FALSE(r->says_close());
  }
  c.send(post("/notes", "tab\tand\r\nlines \xe2\x82\xac", "X-User: ada\r\n"));
  const auto stored = c.read_reply();
  REQUIRE(stored);
  CHECK(stored->status == 201);
  c.send(get("/notes", "X-User: ada\r\n"));
  const auto listed = c.read_reply();
  REQUIRE(listed);
  const auto v = strict_json(listed->body);
  REQUIRE(v);
  REQUIRE(v->at("notes").as_array().size() == 1);
  CHECK(v->at("notes").at(0).at("text").as_string() == "tab\tand\r\nlines \xe2\x82\xac");
}

TEST_CASE("GET /notes is valid JSON even when a stored note is not valid UTF-8") {
  const fs::path db =
      fs::temp_directory_path() / ("baton-http-test-" + std::to_string(::getpid()) + ".db");
  {
    service first({}, 0, db);  // creates the schema
    check_exits_cleanly(first);
  }
  {
    // A note stored before notes were checked, written behind the service's back.
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
    const char* sql = "INSERT INTO notes(user, text, request_id) VALUES ('ada', ?1, 'old')";
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(h, sql, -1, &st, nullptr) == SQLITE_OK);
    const std::string text = "ok \xff\xfe\xc3\x28 end";
    sqlite3_bind_text(st, 1, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    CHECK(sqlite3_step(st) == SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(h);
  }
  service s({}, 0, db);
  const auto r = send_once(s, get("/notes", "X-User: ada\r\n"));
  REQUIRE(r);
  CHECK(r->status == 200);
  const auto v = strict_json(r->body);
  REQUIRE(v);
  CHECK(v->at("notes").at(0).at("text").as_string() ==
        "ok \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd( end");
  check_exits_cleanly(s);
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db.string() + suffix, ec);
}

// ---- the log -------------------------------------------------------------------------------

TEST_CASE("no request can forge a log field or put invalid UTF-8 into the log") {
  service s;
  const auto forged = send_once(s, get("/hello", "X-Request-Id: a]user=admin[\r\nX-User: ada\r\n"));
  REQUIRE(forged);
  CHECK(forged->status == 200);
  CHECK(forged->header("x-request-id") == "a]user=admin[");
  (void)send_once(s, get("/he\xffllo"));
  (void)send_once(s, get("/x%ff%0aforged"));
  (void)send_once(s, get("/hello", "X-Request-Id: q\"uote\\d=\r\nX-User: bob\r\n"));
  check_exits_cleanly(s);  // the log is complete once the service has exited

  const std::string log = s.log();
  CHECK(valid_utf8(log));
  int access_lines = 0;
  for (const std::string& line : lines_of(log)) {
    CAPTURE(line);
    const auto fields = log_fields(line);
    REQUIRE(fields.has_value());
    if (line.find("GET /hello -> 200") == std::string::npos) continue;
    ++access_lines;
    std::map<std::string, std::string> by_label;
    for (const auto& [label, value] : *fields) {
      CHECK(by_label.count(label) == 0);
      by_label[label] = value;
    }
    const bool forged_one = by_label["request_id"] == "a]user=admin[";
    CHECK(by_label["user"] == (forged_one ? "ada" : "bob"));
    CHECK((forged_one || by_label["request_id"] == "q\"uote\\d="));
  }
  CHECK(access_lines == 2);
}

// ---- slow and concurrent clients ----------------------------------------------------------

TEST_CASE("a request that does not arrive in time gets a 408 and the connection closes") {
  service s({"--read-timeout-ms", "300"});
  client c(s.port());
  c.send("GET /hello HTTP/1.1\r\nHost: a\r\nX-Us");  // and nothing more
  const auto r = c.read_reply();
  REQUIRE(r);
  CHECK(r->status == 408);
  CHECK(c.wait_closed() == fate::closed);
  CHECK(serving(s));
}

TEST_CASE("oversized requests get 431 or 413 and a closed connection") {
  service s;
  expect_refused_and_closed(s, get("/hello", "X-Big: " + std::string(16 * 1024, 'a') + "\r\n"),
                            431);
  std::string many;
  for (int i = 0; i < 2000; ++i) many += "X-" + std::to_string(i) + ": 1\r\n";
  expect_refused_and_closed(s, get("/hello", many), 431);
  expect_refused_and_closed(s, post("/notes", std::string(100'000, 'b')), 413);
  std::string chunks = "POST /notes HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 20; ++i) chunks += "1000\r\n" + std::string(0x1000, 'c') + "\r\n";
  expect_refused_and_closed(s, chunks + "0\r\n\r\n", 413);
  CHECK(serving(s));
}

TEST_CASE("concurrent hostile and normal clients each get their own answer") {
  service s;
  constexpr int threads = 8;
  constexpr int rounds = 20;
  std::vector<std::thread> pool;
  std::vector<int> wrong(threads, 0);
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < rounds; ++i) {
        const std::string user = "u" + std::to_string(t) + "-" + std::to_string(i);
        client c(s.port());
        std::optional<reply> r;
        int want = 200;
        switch (i % 4) {
          case 0:
            c.send(get("/hello", "X-User: " + user + "\r\n"));
            break;
          case 1:
            c.send("POST /notes HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n" +
                   get("/hello"));
            want = 400;
            break;
          case 2:
            c.send("GET /hello HTTP/1.1\r\n\r\n");
            want = 400;
            break;
          default:
            c.send(post("/notes", "\xff", "X-User: " + user + "\r\n"));
            want = 400;
        }
        r = c.read_reply();
        const bool ok = r && r->status == want &&
                        (want != 200 || r->body == "hello, " + user + "\n") &&
                        (i % 4 != 1 || c.wait_closed() == fate::closed);
        wrong[static_cast<std::size_t>(t)] += ok ? 0 : 1;
      }
    });
  }
  for (auto& th : pool) th.join();
  CHECK(std::count(wrong.begin(), wrong.end(), 0) == threads);
  CHECK(serving(s));
}

// ---- overload -------------------------------------------------------------------------------

/// The number of lines of `log` that contain `text`.
std::size_t count_lines(const std::string& log, std::string_view text) {
  std::size_t n = 0;
  for (const std::string& line : lines_of(log)) n += line.find(text) != std::string::npos;
  return n;
}

/// Opens `n` connections that send nothing.
std::vector<client> idle_clients(const service& s, int n) {
  std::vector<client> idle;
  for (int i = 0; i < n; ++i) idle.emplace_back(s.port());
  return idle;
}

TEST_CASE(
    "at the connection cap the longest-idle connections make room: /healthz is served "
    "while 400 idle connections are held with descriptors for 256 files") {
  service s({}, 256);  // the cap is 256 - 64
  const std::vector<client> idle = idle_clients(s, 400);
  CHECK(serving(s));
  CHECK(serving(s));
  check_exits_cleanly(s);
  const std::string log = s.log();
  CHECK(log.find("at most 192 connections") != std::string::npos);
  const std::size_t episodes = count_lines(log, "accept paused: at the connection cap");
  CHECK(episodes >= 1);
  CHECK(episodes <= 3);  // one a burst of connections, not one a connection
  CHECK(count_lines(log, "accept resumed") >= episodes - 1);
}

TEST_CASE(
    "out of descriptors, accept backs off and closes idle connections, with one warning "
    "per episode") {
  service s({"--max-connections", "1000"}, 256);  // a cap the descriptors cannot reach
  const std::vector<client> idle = idle_clients(s, 400);
  CHECK(serving(s));
  CHECK(serving(s));
  check_exits_cleanly(s);
  const std::string log = s.log();
  const std::size_t episodes = count_lines(log, "accept paused: Too many open files");
  CHECK(episodes >= 1);
  CHECK(episodes <= 3);
  CHECK(count_lines(log, "Too many open files") == episodes);
}

TEST_CASE(
    "beyond max_in_flight a request gets 503 with Retry-After and its connection stays "
    "usable") {
  service s({"--max-in-flight", "1"});
  client a(s.port());
  client c(s.port());
  std::optional<reply> refused;
  std::optional<reply> ra;
  // Until the slow request is in flight, /healthz passes; then it must be refused. A request
  // counts out just after its response is written, so a /healthz still counted can get the
  // slow request refused (and the next /healthz with it): then the attempt starts again.
  for (int attempt = 0; attempt < 20 && !(refused && ra->status == 200); ++attempt) {
    refused.reset();
    a.send(get("/slow?ms=1500", "X-Deadline-Ms: 10000\r\n"));
    for (int i = 0; i < 10'000 && !refused; ++i) {
      c.send(get("/healthz"));
      auto r = c.read_reply();
      REQUIRE(r);
      if (r->status != 200) refused = std::move(r);
    }
    ra = a.read_reply();
    REQUIRE(ra);
    if (!refused) REQUIRE(ra->status == 503);  // it was the one over the cap
  }
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(refused->header("retry-after") == "1");
  CHECK_FALSE(refused->says_close());
  CHECK(strict_json(refused->body).has_value());
  CHECK(ra->status == 200);
  // The slow request counts out just after its response is written: soon, not at once.
  std::optional<reply> again;
  for (int i = 0; i < 10'000 && !(again && again->status == 200); ++i) {
    c.send(get("/healthz"));
    again = c.read_reply();
    REQUIRE(again);
  }
  CHECK(again->status == 200);
}

/// Posts `n` notes of `text` as `user` on one connection.
void post_notes(const service& s, const std::string& user, int n, const std::string& text) {
  client c(s.port());
  for (int i = 0; i < n; ++i) {
    c.send(post("/notes", text, "X-User: " + user + "\r\n"));
    const auto r = c.read_reply();
    REQUIRE(r);
    REQUIRE(r->status == 201);
  }
}

TEST_CASE("GET /notes comes in pages of at most page_limit bytes that together hold every note") {
  service s;
  post_notes(s, "big", 5, std::string(60'000, '"'));  // 120 kB each once escaped
  post_notes(s, "big", 3, "small");
  for (const char* first : {"/notes", "/notes?limit=2"}) {
    CAPTURE(first);
    std::vector<std::int64_t> ids;
    std::string next = first;
    int pages = 0;
    while (!next.empty() && pages < 20) {
      const auto r = send_once(s, get(next, "X-User: big\r\n"));
      REQUIRE(r);
      REQUIRE(r->status == 200);
      CHECK(r->body.size() <= 256 * 1024);
      const auto v = strict_json(r->body);
      REQUIRE(v);
      for (const auto& n : v->at("notes").as_array()) ids.push_back(n.at("id").as_int64());
      const auto* more = v->as_object().if_contains("next");
      next = more ? std::string(more->as_string()) : std::string();
      ++pages;
    }
    CHECK(ids == std::vector<std::int64_t>{8, 7, 6, 5, 4, 3, 2, 1});
    // 3 small and 2 large notes fill the first 256 KiB page, 2 large the next, 1 the last;
    // with limit=2, 4 pages of 2.
    CHECK(pages == (std::string_view(first) == "/notes" ? 3 : 4));
  }
  const auto bad = send_once(s, get("/notes?limit=0", "X-User: big\r\n"));
  REQUIRE(bad);
  CHECK(bad->status == 400);
}

TEST_CASE("200 concurrent GET /notes of the largest user stay within the response memory") {
  service s;
  post_notes(s, "big", 100, std::string(64'000, '\\'));  // the most a note can grow
  std::vector<client> readers;
  for (int i = 0; i < 200; ++i) {
    readers.emplace_back(s.port());
    // The longest deadline: a slow build (the sanitizers) still answers most of them 200.
    readers.back().send(get("/notes?limit=100", "X-User: big\r\nX-Deadline-Ms: 10000\r\n"));
  }
  int ok = 0;
  int refused = 0;
  int late = 0;  // 504: the deadline passed while the page was read (a slow build, a busy machine)
  for (client& c : readers) {  // read one by one: the others' responses wait in the service
    const auto r = c.read_reply(60s);
    REQUIRE(r);
    CHECK(r->body.size() <= 256 * 1024);
    if (r->status == 200) ++ok;
    if (r->status == 503) {
      ++refused;
      CHECK(r->header("retry-after") == "1");
    }
    if (r->status == 504) ++late;
  }
  CHECK(ok + refused + late == 200);
  CHECK(ok >= 200 * 64 / 256 / 2);  // response_memory holds 256 pages of 256 KiB at most
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  std::ifstream status("/proc/" + std::to_string(s.pid()) + "/status");
  std::size_t peak_kib = 0;
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) peak_kib = std::stoul(line.substr(6));
  }
  MESSAGE("the service's peak RSS: " << peak_kib / 1024 << " MiB");
  CHECK(peak_kib > 0);
  CHECK(peak_kib < 160 * 1024);  // docs/http-service.md, "Overload"
#endif
  CHECK(serving(s));
}

// ---- shutdown ------------------------------------------------------------------------------

/// The notes in a database file the service has closed, as `user/text`.
std::set<std::string> stored_notes(const fs::path& db) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(h, "SELECT user, text FROM notes", -1, &st, nullptr) == SQLITE_OK);
  std::set<std::string> notes;
  while (sqlite3_step(st) == SQLITE_ROW) {
    notes.insert(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) + "/" +
                 reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return notes;
}

TEST_CASE(
    "at SIGTERM every keep-alive client is answered until a response says Connection: close, "
    "and no note whose client got no response is stored") {
  // Long enough that no client is too slow for them: the service still ends as soon as every
  // client has had its Connection: close and hung up.
  service s({"--shutdown-grace-ms", "60000", "--shutdown-last-call-ms", "60000"});
  constexpr int clients = 16;
  struct exchange {
    std::string text;
    int status = 0;       // 0: the connection ended with no response
    bool closes = false;  // the response said Connection: close
  };
  std::vector<std::vector<exchange>> seen(clients);
  std::vector<fate> ended(clients, fate::open);
  std::vector<std::string> errors(clients);
  std::mutex m;
  std::condition_variable cv;
  std::vector<int> answered(clients, 0);
  std::vector<bool> done(clients, false);
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      const auto i = static_cast<std::size_t>(t);
      try {
        client c(s.port());
        // Half ask for /hello (answered at once: their connections are mostly between a
        // response and the next request), a quarter post notes, a quarter post through a
        // handler that waits 100 ms first (in flight at the signal).
        const std::string headers =
            "X-User: c" + std::to_string(t) + "\r\nX-Deadline-Ms: 10000\r\n";
        for (int k = 0; k < 1'000'000; ++k) {
          exchange x{"note " + std::to_string(k)};
          // keep-alive: the next request as soon as the response is read
          c.send(t % 4 < 2    ? get("/hello", headers)
                 : t % 4 == 2 ? post("/notes", x.text, headers)
                              : post("/notes?delay_ms=100", x.text, headers));
          const auto r = c.read_reply(120s);
          if (r) {
            x.status = r->status;
            x.closes = r->says_close();
          }
          seen[i].push_back(x);
          {
            std::lock_guard lock(m);
            answered[i] += r ? 1 : 0;
          }
          cv.notify_all();
          if (!r || x.closes) break;
        }
        if (seen[i].back().closes) ended[i] = c.wait_closed(120s);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
      {
        std::lock_guard lock(m);
        done[i] = true;
      }
      cv.notify_all();
    });
  }
  {
    // Every client has had some answers: the signal finds all of them busy.
    std::unique_lock lock(m);
    cv.wait(lock, [&] {
      for (std::size_t i = 0; i < clients; ++i) {
        if (!done[i] && answered[i] < 3) return false;
      }
      return true;
    });
  }
  check_exits_cleanly(s);
  for (auto& th : threads) th.join();

  const std::set<std::string> stored = stored_notes(s.folder() / "notes.db");
  std::size_t acknowledged = 0;
  std::size_t refused = 0;
  for (std::size_t i = 0; i < clients; ++i) {
    CAPTURE(i);
    CHECK(errors[i].empty());
    REQUIRE_FALSE(seen[i].empty());
    // The client stops at the first response that says close, or at the first request that
    // got none: the last request must have been answered, with Connection: close, and the
    // connection then closed.
    const exchange& last = seen[i].back();
    CAPTURE(last.text);
    CHECK(last.status != 0);
    CHECK(last.closes);
    CHECK(ended[i] == fate::closed);
    for (const exchange& x : seen[i]) {
      const bool is_stored = stored.count("c" + std::to_string(i) + "/" + x.text) == 1;
      if (x.status == 201) {
        ++acknowledged;
        CHECK(is_stored);
      } else {
        // /hello's 200, a 503 (not run), or nothing (the connection ended): nothing stored
        CHECK_FALSE(is_stored);
        refused += x.status == 503 ? 1 : 0;
      }
    }
  }
  CHECK(stored.size() == acknowledged);  // and nothing else was stored
  MESSAGE(acknowledged << " notes acknowledged, " << refused << " refused with 503");
}

// ---- log durability --------------------------------------------------------------------------

/// Sends `n` requests made by `make(id)` on one connection, each with its own X-Request-Id
/// `<prefix>-<i>`, requires `status` for each, and returns the ids.
std::vector<std::string> acknowledged_ids(
    const service& s, const std::string& prefix, int n, int status,
    const std::function<std::string(const std::string&)>& make) {
  std::vector<std::string> ids;
  client c(s.port());
  for (int i = 0; i < n; ++i) {
    const std::string id = prefix + "-" + std::to_string(i);
    c.send(make(id));
    const auto r = c.read_reply();
    REQUIRE(r);
    REQUIRE(r->status == status);
    ids.push_back(id);
  }
  return ids;
}

/// The ids whose line containing `text` is missing from `log`.
std::vector<std::string> missing_lines(const std::string& log, const std::vector<std::string>& ids,
                                       std::string_view text) {
  std::set<std::string> found;
  for (const std::string& line : lines_of(log)) {
    if (line.find(text) == std::string::npos) continue;
    const auto at = line.find("request_id=");
    if (at == std::string::npos) continue;
    const auto end = line.find_first_of(" ]", at);
    found.insert(line.substr(at + 11, end - at - 11));
  }
  std::vector<std::string> missing;
  for (const std::string& id : ids) {
    if (found.count(id) == 0) missing.push_back(id);
  }
  return missing;
}

TEST_CASE(
    "the log lines of every acknowledged note are in the file when the service is killed "
    "with SIGKILL right after the acknowledgement") {
  service s;  // the default flush interval (1 s): a write flushes before its response
  std::vector<std::vector<std::string>> ids(4);
  std::vector<std::thread> writers;
  for (std::size_t t = 0; t < ids.size(); ++t) {
    writers.emplace_back([&, t] {
      ids[t] = acknowledged_ids(s, "note" + std::to_string(t), 25, 201, [](const std::string& id) {
        return post("/notes", "text of " + id, "X-User: ada\r\nX-Request-Id: " + id + "\r\n");
      });
    });
  }
  for (auto& w : writers) w.join();
  s.kill_now();  // no shutdown, no flush at exit
  const std::string log = s.log();
  for (const auto& some : ids) {
    REQUIRE(some.size() == 25);
    CHECK(missing_lines(log, some, "] stored note ").empty());
    CHECK(missing_lines(log, some, "] POST /notes -> 201 (").empty());
  }
}

TEST_CASE("with --log-flush-ms 0 every line is in the file before its response is sent") {
  service s({"--log-flush-ms", "0"});
  const auto ids = acknowledged_ids(s, "hello", 50, 200, [](const std::string& id) {
    return get("/hello", "X-Request-Id: " + id + "\r\n");
  });
  s.kill_now();
  const std::string log = s.log();
  CHECK(missing_lines(log, ids, "] saying hello").empty());
  CHECK(missing_lines(log, ids, "] GET /hello -> 200 (").empty());
}

/// Waits until `done(s.log())` holds, woken by changes to the log file (inotify), for at most
/// `limit`; whether it came to hold.
bool wait_for_log(const service& s, const std::function<bool(const std::string&)>& done,
                  std::chrono::milliseconds limit) {
  const int fd = ::inotify_init1(IN_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::inotify_add_watch(fd, s.log_file().c_str(), IN_MODIFY) >= 0);  // before looking
  const auto until = std::chrono::steady_clock::now() + limit;
  bool held = false;
  for (;;) {
    held = done(s.log());
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (held || left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) > 0) {
      alignas(inotify_event) char events[4096];
      (void)::read(fd, events, sizeof events);
    }
  }
  ::close(fd);
  return held;
}

TEST_CASE(
    "lines of reads reach the file within the flush interval, without a warning or a "
    "shutdown to push them, and a SIGKILL then loses none") {
  service s({"--log-flush-ms", "200"});
  const auto ids = acknowledged_ids(s, "read", 50, 200, [](const std::string& id) {
    return get("/hello", "X-Request-Id: " + id + "\r\n");
  });
  // Nothing here flushes a line but the flusher: the requests are reads, and none warns.
  CHECK(wait_for_log(
      s, [&](const std::string& log) { return missing_lines(log, ids, "] GET /hello").empty(); },
      30s));
  s.kill_now();
  const std::string log = s.log();
  CHECK(missing_lines(log, ids, "] GET /hello -> 200 (").empty());
  CHECK(count_lines(log, " warning ") == 0);
}

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] != '-') service_binary = argv[i];
  }
  if (service_binary.empty()) {
    std::fprintf(stderr, "http_service_test: pass the path of samples/http_service\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  doctest::Context context(argc, argv);
  return context.run();
}
