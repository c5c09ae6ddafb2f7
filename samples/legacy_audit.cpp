// SPDX-License-Identifier: BSL-1.0
// A mirror at work: a "legacy audit logger" that only reads a thread_local follows each task's
// context var, on two loop threads and in to_thread jobs, through 1000 interleaved tasks.
//
// The logger stands for a tracing SDK's current span or a logging MDC: it cannot be taught
// about tasks, it only offers set/clear for the calling thread. One on_switch() keeps its
// thread_local equal to the var's value on every thread, whatever runs there; the program
// checks every record it writes and exits 1 on the first wrong one.
#include <baton/baton.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace legacy_audit {

// The library's whole state: who acts on this thread. It has no idea what a task is.
thread_local std::string principal;
thread_local bool has_principal = false;

void set_principal(const std::string& who) {
  principal = who;
  has_principal = true;
}
void clear_principal() {
  principal.clear();
  has_principal = false;
}

/// Writes an audit record for the calling thread's principal.
std::string record(std::string_view action) {
  return (has_principal ? principal : std::string("<nobody>")) + " " + std::string(action);
}

}  // namespace legacy_audit

namespace {

using namespace std::chrono_literals;

baton::context_var<std::string> principal("principal");

struct tally {
  std::atomic<int> records{0};
  std::atomic<int> from_jobs{0};
  std::atomic<int> wrong{0};
  std::mutex mutex;
  std::string first_wrong;

  void check(const std::string& got, const std::string& who, bool job) {
    records.fetch_add(1, std::memory_order_relaxed);
    if (job) from_jobs.fetch_add(1, std::memory_order_relaxed);
    if (got.rfind(who + " ", 0) == 0) return;
    if (wrong.fetch_add(1, std::memory_order_relaxed) == 0) {
      std::lock_guard lock(mutex);
      first_wrong = "expected " + who + ", the logger wrote: " + got;
    }
  }
};

/// One user's session: audits on the loop between suspensions, and from blocking jobs.
baton::task<> session(int n, tally& t) {
  const std::string who = "user-" + std::to_string(n);
  (void)principal.set(who);  // the mirror tells the logger, on this thread, right now
  for (int step = 0; step < 5; ++step) {
    t.check(legacy_audit::record("step " + std::to_string(step)), who, false);
    if ((n + step) % 3 == 0) {
      const std::string job = co_await baton::to_thread(
          [step] { return legacy_audit::record("job " + std::to_string(step)); });
      t.check(job, who, true);
    } else {
      co_await baton::sleep(std::chrono::microseconds((n * 7 + step) % 50));
    }
  }
}

baton::task<> all_sessions(tally& t) {
  std::vector<baton::task_handle<>> sessions;
  for (int n = 0; n < 1000; ++n) sessions.push_back(baton::spawn(session(n, t)));
  for (auto& s : sessions) co_await s;
}

}  // namespace

int main() {
  principal.on_switch([](const std::string* who) {
    if (who != nullptr) {
      legacy_audit::set_principal(*who);
    } else {
      legacy_audit::clear_principal();
    }
  });
  tally t;
  baton::run_options opts;
  opts.threads = 2;
  baton::run(all_sessions(t), opts);
  // Back on this thread, outside any task: nobody acts.
  const std::string after = legacy_audit::record("after the loop");
  std::printf("%d audit records, %d of them from to_thread jobs, %d wrong; after run(): %s\n",
              t.records.load(), t.from_jobs.load(), t.wrong.load(), after.c_str());
  if (t.wrong.load() != 0) std::printf("first wrong record: %s\n", t.first_wrong.c_str());
  return t.wrong.load() == 0 && after == "<nobody> after the loop" ? 0 : 1;
}
