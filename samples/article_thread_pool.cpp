// SPDX-License-Identifier: BSL-1.0
// The article's thread-pool problem in C++: a plain pool loses the submitter's context, the
// per-thread "initializer" trick leaks one job's user into the next, and baton's
// context_executor / bind_context give every job exactly its submitter's user.
// Run: ./build/samples/article_thread_pool   (exit status 0 when every property held)
#include <baton/baton.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <cstdio>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace asio = boost::asio;

baton::context_var<std::string> current_user("current_user");

int failures = 0;

void expect(bool ok, const char* what) {
  std::printf("  %s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

/// A request: runs body in a new context where the current user is `user` (none if empty),
/// the way a web framework enters one context per request.
template <class F>
auto as_request(const std::string& user, F&& body) {
  return baton::context().run([&] {
    if (!user.empty()) (void)current_user.set(user);
    return body();
  });
}

/// What a job reports: the user it saw, "<none>" when it saw none.
std::string seen_user() { return current_user.get("<none>"); }

/// Posts job to ex and waits for its result.
template <class Executor, class F>
std::string post_and_wait(const Executor& ex, F job) {
  auto done = std::make_shared<std::promise<std::string>>();
  auto result = done->get_future();
  asio::post(ex, [done, job = std::move(job)]() mutable { done->set_value(job()); });
  return result.get();
}

// ---- 1. a plain pool: the context stays behind ------------------------------------------------

void plain_pool_loses_the_context() {
  std::puts("1. a plain asio::thread_pool: the job does not see the submitter's user");
  asio::thread_pool pool(1);
  const std::string seen =
      as_request("alice", [&] { return post_and_wait(pool.get_executor(), seen_user); });
  std::printf("     alice submitted; the job saw %s\n", seen.c_str());
  expect(seen == "<none>", "the context did not travel with the job (the article's problem)");
  pool.join();
}

// ---- 2. the initializer trick: per thread, not per job ----------------------------------------

/// The article's workaround, transposed: ThreadPoolExecutor(initializer=...) runs once per
/// pool thread and sets the user there. Here the "initializer" runs before a thread's first
/// job and copies the user of whoever made that thread start into a thread_local.
thread_local std::optional<std::string> pool_thread_user;

template <class F>
auto with_initializer(std::string user_at_first_job, F job) {
  return [user_at_first_job = std::move(user_at_first_job), job = std::move(job)]() mutable {
    if (!pool_thread_user) pool_thread_user = user_at_first_job;  // once per thread
    return job();
  };
}

std::string thread_local_user() { return pool_thread_user.value_or("<none>"); }

void initializer_trick_leaks() {
  std::puts("2. the initializer trick: the value is set once per pool thread");
  asio::thread_pool pool(1);  // one thread: every job below runs on it
  auto submit = [&](const std::string& user) {
    return as_request(user, [&] {
      return post_and_wait(pool.get_executor(),
                           with_initializer(current_user.get("<none>"), thread_local_user));
    });
  };
  const std::string for_alice = submit("alice");
  const std::string for_bob = submit("bob");
  const std::string for_nobody = submit("");
  std::printf("     alice's job saw %s, bob's job saw %s, an anonymous job saw %s\n",
              for_alice.c_str(), for_bob.c_str(), for_nobody.c_str());
  expect(for_alice == "alice", "the first job on the thread sees its user");
  expect(for_bob == "alice", "bob's job sees alice: the thread kept the first user (leak)");
  expect(for_nobody == "alice", "a job without a user sees alice too (leak)");
  pool.join();
}

// ---- 3. baton: the context is captured per submission -----------------------------------------

void context_executor_fixes_both() {
  std::puts("3. baton::context_executor: each job runs in a copy of its submitter's context");
  asio::thread_pool pool(1);  // still one thread, so every job reuses the previous one's thread
  auto ex = baton::make_context_executor(pool.get_executor());
  const std::vector<std::string> users = {"alice", "bob", "", "carol", ""};
  for (const std::string& user : users) {
    const std::string seen = as_request(user, [&] {
      return post_and_wait(ex, [] {
        const std::string mine = seen_user();
        (void)current_user.set("left behind by " + mine);  // must not reach the next job
        return mine;
      });
    });
    const std::string want = user.empty() ? "<none>" : user;
    std::printf("     %-8s submitted; the job saw %s\n", user.empty() ? "(nobody)" : user.c_str(),
                seen.c_str());
    expect(seen == want, user.empty() ? "a job without a user sees none"
                                      : "the job sees exactly its submitter's user");
  }
  // A set inside a job never reaches the submitter either.
  as_request("dave", [&] {
    (void)post_and_wait(ex, [] {
      (void)current_user.set("mallory");
      return seen_user();
    });
    expect(current_user.get() == "dave", "a set inside a job does not leak back to the submitter");
  });
  pool.join();
}

void bind_context_fixes_both() {
  std::puts("4. baton::bind_context: the callable carries the context, any pool runs it");
  asio::thread_pool pool(2);
  // Many jobs at once on two threads; each bound at its own submission.
  std::vector<std::future<std::string>> results;
  std::vector<std::string> expected;
  for (int i = 0; i < 40; ++i) {
    const std::string user = i % 5 == 0 ? "" : "user-" + std::to_string(i);
    expected.push_back(user.empty() ? "<none>" : user);
    auto done = std::make_shared<std::promise<std::string>>();
    results.push_back(done->get_future());
    as_request(user, [&] {
      asio::post(pool, baton::bind_context([done] {
                   const std::string mine = seen_user();
                   (void)current_user.set("mallory");  // stays in this call's own copy
                   done->set_value(mine);
                 }));
    });
  }
  int wrong = 0;
  for (std::size_t i = 0; i < results.size(); ++i) wrong += results[i].get() != expected[i];
  std::printf("     40 jobs on 2 threads, 8 of them anonymous: %d saw a wrong user\n", wrong);
  expect(wrong == 0, "every bound job sees exactly its submitter's user, or none");
  pool.join();
}

}  // namespace

int main() {
  plain_pool_loses_the_context();
  initializer_trick_leaks();
  context_executor_fixes_both();
  bind_context_fixes_both();
  std::puts(failures == 0 ? "every property held" : "some property failed");
  return failures == 0 ? 0 : 1;
}
