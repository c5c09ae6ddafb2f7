// SPDX-License-Identifier: BSL-1.0
// The article's asyncio example in C++: a request sets the current user once, then
// say_hello() and offer_sympathies() run concurrently (gather) and both log that user from the
// context var, without it being passed; several requests interleave without mixing users.
// Run: ./build/samples/article_concurrent   (exit status 0 when every property held)
#include <baton/baton.hpp>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

baton::context_var<std::string> current_user("current_user");
baton::context_var<std::string> greeted("greeted");  // set by say_hello, for nobody else

/// Logs with the ambient user, as a logging filter reading the context var would, and returns
/// the user it saw so that the request can check it.
std::string log(const char* what) {
  const std::string user = current_user.get("<none>");
  std::printf("    [user=%s] %s\n", user.c_str(), what);
  return user;
}

baton::task<std::string> say_hello() {
  co_await baton::sleep(2ms);  // stands for some I/O
  (void)greeted.set("yes");    // this task's own copy: invisible to its parent and sibling
  co_return log("Hello!");
}

baton::task<std::string> offer_sympathies() {
  co_await baton::sleep(1ms);
  co_return log("Sorry to hear that.");
}

/// One request: sets the user once; every task it spawns starts from a copy of its context.
baton::task<bool> handle_request(std::string user) {
  (void)current_user.set(user);
  auto [hello_saw, sympathies_saw] =
      co_await baton::gather(baton::spawn(say_hello()), baton::spawn(offer_sympathies()));
  const bool ok = hello_saw == user && sympathies_saw == user && current_user.get() == user &&
                  !greeted.try_get();
  if (!ok) std::printf("    FAIL in %s's request\n", user.c_str());
  co_return ok;
}

// ---- several requests at once -----------------------------------------------------------------

std::mutex order_mutex;          // two loop threads may finish steps at once
std::vector<std::string> order;  // whose step ran when

/// A longer request: a few steps with sleeps of different lengths, so that requests interleave.
baton::task<bool> chatty_request(std::string user, int pace_ms) {
  (void)current_user.set(user);
  bool ok = true;
  for (int step = 0; step < 4; ++step) {
    co_await baton::sleep(std::chrono::milliseconds(pace_ms));
    auto [a, b] =
        co_await baton::gather(baton::spawn(say_hello()), baton::spawn(offer_sympathies()));
    {
      std::lock_guard lock(order_mutex);
      order.push_back(user);
    }
    const bool step_ok = a == user && b == user && current_user.get() == user;
    if (!step_ok) {
      std::printf(
          "    FAIL in %s's request, step %d: say_hello saw %s, offer_sympathies saw %s,"
          " the request sees %s\n",
          user.c_str(), step, a.c_str(), b.c_str(), current_user.get("<none>").c_str());
    }
    ok = ok && step_ok;
  }
  co_return ok;
}

baton::task<int> main_task() {
  int failures = 0;

  std::puts("1. one request: say_hello and offer_sympathies run concurrently, both see the user");
  // Spawned, as a server spawns each request: a plain `co_await handle_request(...)` would run
  // in this task's own context (awaiting a coroutine shares the context, as in Python).
  failures += !co_await baton::spawn(handle_request("alice"));

  std::puts("2. four requests at once, interleaving at every sleep");
  const std::vector<std::string> users = {"alice", "bob", "carol", "dave"};
  std::vector<baton::task_handle<bool>> requests;
  for (std::size_t i = 0; i < users.size(); ++i) {
    requests.push_back(baton::spawn(chatty_request(users[i], 1 + static_cast<int>(i))));
  }
  for (auto& r : requests) failures += !co_await r;

  int switches = 0;
  for (std::size_t i = 1; i < order.size(); ++i) switches += order[i] != order[i - 1];
  std::printf("  steps ran in this order:");
  for (const auto& u : order) std::printf(" %c", u[0]);
  std::printf("\n  %d switches between requests; no request saw another's user\n", switches);

  std::puts("3. the loop's own context never got a user");
  if (current_user.try_get()) {
    std::printf("    FAIL: the main task sees user %s\n", current_user.get().c_str());
    ++failures;
  }
  co_return failures;
}

}  // namespace

int main() {
  int failures = 0;
  std::puts("== on one loop thread");
  failures += baton::run(main_task());
  order.clear();
  std::puts("== on two loop threads (tasks resume on either)");
  baton::run_options two;
  two.threads = 2;
  failures += baton::run(main_task(), two);
  std::puts(failures == 0 ? "every property held" : "some property failed");
  return failures == 0 ? 0 : 1;
}
