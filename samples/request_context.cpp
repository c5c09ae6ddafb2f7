// SPDX-License-Identifier: BSL-1.0
// Context vars at work: each "request" runs in its own context; helpers read the ambient user
// and request id without parameters, and nothing leaks between requests or threads.
#include <baton/baton.hpp>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace {

baton::context_var<std::string> request_id("request_id");
baton::context_var<std::string> user("user", "anonymous");

void log(const std::string& what) {
  std::printf("[req=%s user=%s] %s\n", request_id.get("-").c_str(), user.get().c_str(),
              what.c_str());
}

int handle(const std::string& id, const std::string& who) {
  (void)request_id.set(id);
  if (!who.empty()) (void)user.set(who);
  log("handling");
  return user.get() == (who.empty() ? "anonymous" : who) ? 0 : 1;
}

}  // namespace

int main() {
  int failures = 0;
  // One context per request, even when requests run on the same thread one after another.
  failures += baton::context().run(handle, "r-1", "ada");
  failures += baton::context().run(handle, "r-2", "");
  // And on threads at once: each thread enters its own copy of a base context.
  (void)user.set("base");
  std::vector<std::thread> threads;
  std::atomic<int> thread_failures{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i, ctx = baton::copy_context()]() mutable {
      thread_failures += ctx.run(handle, "t-" + std::to_string(i), "user" + std::to_string(i));
    });
  }
  for (auto& t : threads) t.join();
  failures += thread_failures;
  log(failures == 0 ? "every request saw only its own values" : "a request saw another's values");
  return failures == 0 ? 0 : 1;
}
