// SPDX-License-Identifier: BSL-1.0
// The install test's spdlog consumer: <baton/spdlog.hpp> built with the pkg-config and CMake
// lines that docs/reference/spdlog.md gives. A task logs through a context formatter; exit 0
// when the line carries the task's request id.
#include <baton/spdlog.hpp>

#include <baton/baton.hpp>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>
#include <sstream>
#include <string>

namespace {

baton::context_var<std::string> request_id("request_id");

baton::task<std::string> handle(std::shared_ptr<spdlog::logger> log, std::ostringstream& out) {
  (void)request_id.set("r-42");
  log->info("hello");
  co_return out.str();
}

}  // namespace

int main() {
  std::ostringstream out;
  auto log = std::make_shared<spdlog::logger>(
      "app", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
  baton::log_fields fields;
  fields.add(request_id);
  log->set_formatter(baton::make_context_formatter("[%*] %v", fields));
  const std::string line = baton::run(handle(log, out));
  if (line.rfind("[request_id=r-42] hello", 0) != 0) {
    std::printf("spdlog consumer: got '%s'\n", line.c_str());
    return 1;
  }
  std::puts("spdlog consumer: ok");
  return 0;
}
