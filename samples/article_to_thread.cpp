// SPDX-License-Identifier: BSL-1.0
// asyncio.to_thread in C++: a blocking call runs on the loop's pool inside a copy of the calling
// task's context, so it sees that task's user; its sets never leak back or into the next job;
// cancelling stops waiting at once and asks the call to stop; fibers do the same in blocking style.
// Run: ./build/samples/article_to_thread   (exit status 0 when every property held)
#include <baton/baton.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

baton::context_var<std::string> current_user("current_user");

/// What the blocking call reports back.
struct lookup_result {
  std::string user_seen;     // the user the call saw in its context
  std::uint64_t digest = 0;  // some real work on it
  bool on_loop_thread = false;
};

std::thread::id loop_thread;

/// A plain blocking function, unaware of tasks: a few milliseconds of "blocking I/O", then a
/// hash of the key salted with the ambient user. It reads the user from the context var, as a
/// library's logging or auditing code would. It also sets the var, which must stay local.
lookup_result blocking_lookup(const std::string& key) {
  std::this_thread::sleep_for(5ms);  // stands for a blocking read
  lookup_result r;
  r.user_seen = current_user.get("<none>");
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (char c : r.user_seen + "/" + key) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  r.digest = h;
  r.on_loop_thread = std::this_thread::get_id() == loop_thread;
  (void)current_user.set("mallory");  // a set inside the call: seen by nobody else
  return r;
}

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("  FAIL %s\n", what.c_str());
    ++failures;
  }
}

/// One request: sets its user (or none), calls the blocking function through to_thread.
baton::task<> request(std::string user, std::string key) {
  if (!user.empty()) (void)current_user.set(user);
  const lookup_result r = co_await baton::to_thread(blocking_lookup, key);
  const std::string want = user.empty() ? "<none>" : user;
  std::printf("  %-8s -> the blocking call saw %-8s digest %016llx\n",
              user.empty() ? "(nobody)" : user.c_str(), r.user_seen.c_str(),
              static_cast<unsigned long long>(r.digest));
  expect(r.user_seen == want, want + "'s blocking call saw " + r.user_seen);
  expect(!r.on_loop_thread, "the blocking call ran on the loop thread");
  expect(current_user.get("<none>") == want, "the call's set leaked back into " + want);
}

/// A ticker that proves the loop stays free while the calls block their pool threads.
baton::task<int> ticker(const bool& stop) {
  int ticks = 0;
  while (!stop) {
    co_await baton::sleep(1ms);
    ++ticks;
  }
  co_return ticks;
}

baton::task<> requests_at_once() {
  std::puts("1. requests of different users call a blocking function via to_thread, at once");
  loop_thread = std::this_thread::get_id();
  bool stop = false;
  auto tick = baton::spawn(ticker(stop));
  const std::vector<std::string> users = {"alice", "bob", "", "carol", "dave", "", "erin"};
  std::vector<baton::task_handle<void>> hs;
  for (const auto& u : users) hs.push_back(baton::spawn(request(u, "order-42")));
  for (auto& h : hs) co_await h;
  stop = true;
  std::printf("  the loop ticked %d times meanwhile (it was never blocked)\n", co_await tick);
}

baton::task<> one_pool_thread() {
  std::puts("2. one pool thread: each job starts clean, whatever the previous job set");
  // run() below gives this loop a single blocking thread, so every call reuses it. Each request
  // is spawned (its own context), one after the other.
  for (const char* u : {"alice", "", "bob", ""}) co_await baton::spawn(request(u, "same-thread"));
}

baton::task<> cancellation() {
  std::puts(
      "3. cancelling a task waiting in to_thread: it wakes at once, the call is asked to stop");
  std::atomic<bool> stop_seen{false};
  const auto started = std::chrono::steady_clock::now();
  try {
    co_await baton::wait_for(baton::to_thread([&stop_seen](std::stop_token st) {
                               while (!st.stop_requested()) std::this_thread::sleep_for(1ms);
                               stop_seen = true;
                             }),
                             20ms);
    expect(false, "wait_for should have timed out");
  } catch (const baton::timeout_error&) {
    const auto waited = std::chrono::steady_clock::now() - started;
    std::printf("  timed out after %lld ms; the pool thread keeps running until it checks\n",
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()));
  }
  // The stop request reaches the job through its std::stop_token; give it a moment to notice.
  for (int i = 0; i < 1000 && !stop_seen; ++i) {
    co_await baton::to_thread([] { std::this_thread::sleep_for(1ms); });
  }
  expect(stop_seen, "the blocking call never saw its stop request");
  std::printf("  the blocking call saw its stop request: %s\n", stop_seen.load() ? "yes" : "no");
}

/// A request served by a fiber: the task sets the user, the fiber starts from a copy of its
/// context and makes blocking-style calls that suspend only the fiber.
baton::task<bool> fiber_request(std::string user) {
  if (!user.empty()) (void)current_user.set(user);
  const std::string want = user.empty() ? "<none>" : user;
  auto h = baton::spawn_fiber([want] {
    bool ok = true;
    for (int round = 0; round < 3; ++round) {
      const lookup_result r = baton::await(baton::to_thread(blocking_lookup, "fiber"));
      baton::await(baton::sleep(1ms));
      ok = ok && r.user_seen == want && current_user.get("<none>") == want;
    }
    return ok;
  });
  const bool ok = co_await h;
  std::printf("  fiber of %-8s: 3 to_thread calls and sleeps, always saw its own user: %s\n",
              user.empty() ? "(nobody)" : user.c_str(), ok ? "yes" : "NO");
  co_return ok;
}

baton::task<> fibers() {
  std::puts("4. fibers: the same calls in blocking style, with spawn_fiber + await");
  std::vector<baton::task_handle<bool>> hs;
  for (const char* u : {"alice", "bob", "", "carol"}) hs.push_back(baton::spawn(fiber_request(u)));
  for (auto& h : hs) expect(co_await h, "a fiber saw another user");
}

}  // namespace

int main() {
  baton::run(requests_at_once());
  baton::run_options one_thread;
  one_thread.blocking_threads = 1;
  baton::run(one_pool_thread(), one_thread);
  baton::run(cancellation());
  baton::run(fibers());
  std::puts(failures == 0 ? "every property held" : "some property failed");
  return failures == 0 ? 0 : 1;
}
