// SPDX-License-Identifier: BSL-1.0
// The loop on several threads: tasks resume anywhere, never on two threads, with their context.
#include <baton/run.hpp>

#include <baton/baton.hpp>
#include <doctest/doctest.h>
#include <support/run_test.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <atomic>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <semaphore>
#include <thread>
#include <chrono>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using baton::task;
using baton_test::run_task;

namespace {

baton::context_var<std::uint64_t> tag("tag");

baton::run_options threads(unsigned n) {
  baton::run_options o;
  o.threads = n;
  return o;
}

/// Sets its own tag, then suspends in different ways, checking the tag after each one.
task<int> checker(std::uint64_t id, int rounds, std::atomic<int>& in_flight_same_task) {
  (void)tag.set(id);
  int wrong = 0;
  for (int r = 0; r < rounds; ++r) {
    switch (r % 3) {
      case 0:
        co_await baton::sleep(0ms);
        break;
      case 1:
        co_await baton::sleep(std::chrono::microseconds(id % 5));
        break;
      default: {
        boost::asio::steady_timer t(baton::current_executor(), std::chrono::microseconds(1));
        co_await t.async_wait(baton::use_task);
      }
    }
    if (tag.get() != id) ++wrong;
  }
  (void)in_flight_same_task;
  co_return wrong;
}

task<> nothing() { co_return; }

/// Sets its tag over and over (each set() replaces its context's root) until told to stop.
task<int> keep_setting(const std::atomic<bool>& stop) {
  int sets = 0;
  while (!stop.load()) {
    (void)tag.set(static_cast<std::uint64_t>(++sets));
    if (sets % 64 == 0) co_await baton::sleep(0ms);
  }
  co_return sets;
}

/// The stress body: n tasks, a random third of them cancelled at random points.
task<> stress(int n, std::atomic<int>& wrong, std::atomic<int>& cancelled, std::atomic<int>& ok) {
  std::mt19937 rng(12345);
  std::vector<baton::task_handle<int>> hs;
  hs.reserve(n);
  std::atomic<int> unused{0};
  for (int i = 0; i < n; ++i) {
    hs.push_back(baton::spawn(checker(static_cast<std::uint64_t>(i) + 1, 3, unused)));
    if (rng() % 3 == 0) hs[rng() % hs.size()].cancel();
    if (i % 1000 == 0) co_await baton::sleep(0ms);
  }
  for (auto& h : hs) {
    try {
      wrong += co_await h;
      ++ok;
    } catch (const baton::cancelled_error&) {
      ++cancelled;
    }
  }
}

/// What the tasks of the wait stress share: one lock, semaphore, event and queue.
struct wait_stress {
  baton::lock l;
  baton::semaphore sem{2};
  baton::event go;
  baton::event hold;    // keeps every task unfinished until the test has sent its cancels
  baton::queue<int> q;  // unbounded: a put never waits, so stray items cannot block it
  int guarded = 0;      // only ever touched with l held
  std::atomic<int> locked_rounds{0};
  std::atomic<int> in_sem{0};
  std::atomic<int> too_many{0};  // times more than 2 tasks held a permit
  std::atomic<int> wrong{0};     // times a task saw another context after a wait
  std::atomic<int> puts{0};
  std::atomic<int> gets{0};
};

/// Moves one task through every kind of wait, round after round: each wait queues the task
/// itself on the primitive (the links are the task's), so one set of links serves them all.
task<> wait_everywhere(wait_stress& w, std::uint64_t id) {
  (void)tag.set(id);
  co_await w.go.wait();
  for (int round = 0; round < 20; ++round) {
    co_await w.l.acquire();
    ++w.guarded;  // no suspension between acquire and release: a cancel cannot land here
    ++w.locked_rounds;
    w.l.release();
    if (tag.get() != id) ++w.wrong;
    co_await w.sem.acquire();
    if (++w.in_sem > 2) ++w.too_many;
    --w.in_sem;
    w.sem.release();
    if (tag.get() != id) ++w.wrong;
    co_await w.q.put(static_cast<int>(id));
    ++w.puts;
    (void)co_await w.q.get();
    ++w.gets;
    if (tag.get() != id) ++w.wrong;
  }
  co_await w.hold.wait();
  if (tag.get() != id) ++w.wrong;
}

}  // namespace

TEST_SUITE("threads") {
  TEST_CASE("on four loop threads every task sees exactly its own context after each suspension") {
    std::atomic<int> wrong{0};
    run_task(
        [&]() -> task<> {
          std::atomic<int> unused{0};
          std::vector<baton::task_handle<int>> hs;
          for (std::uint64_t i = 1; i <= 400; ++i)
            hs.push_back(baton::spawn(checker(i, 12, unused)));
          for (auto& h : hs) wrong += co_await h;
        },
        threads(4));
    CHECK(wrong == 0);
  }

  TEST_CASE("a second queued task wakes the idle loop thread: two children run at once") {
    // The first child goes to the spawner's LIFO slot, the second pushes it to the run queue:
    // the idle thread must be woken and take one, or the two children, which each wait for
    // the other to be running, could never meet.
    std::latch both_running(2);
    auto meet = [](std::latch& l) -> task<> {
      l.arrive_and_wait();
      co_return;
    };
    run_task(
        [&]() -> task<> {
          auto a = baton::spawn(meet(both_running));
          auto b = baton::spawn(meet(both_running));
          co_await a;
          co_await b;
        },
        threads(2));
    CHECK(both_running.try_wait());
  }

  TEST_CASE("a chain of spawn and join on two loop threads keeps every context") {
    // The LIFO hand-over: each child goes to the slot of the thread that then suspends and
    // runs it, unless the other thread, searching, takes it first.
    int wrong = 0;
    run_task(
        [&]() -> task<> {
          std::atomic<int> unused{0};
          for (std::uint64_t i = 1; i <= 2000; ++i) {
            (void)tag.set(i);
            wrong += co_await baton::spawn(checker(i * 7, 1, unused));
            if (tag.get() != i) ++wrong;
          }
        },
        threads(2));
    CHECK(wrong == 0);
  }

  TEST_CASE("task ids stay unique when tasks are spawned on several loop threads") {
    // Ids come from per-thread blocks of a global counter: spawners on different threads
    // must still never hand out the same id.
    std::vector<std::uint64_t> ids;
    run_task(
        [&]() -> task<> {
          auto spawner = []() -> task<std::vector<std::uint64_t>> {
            std::vector<std::uint64_t> mine;
            for (int i = 0; i < 3000; ++i) {
              auto h = baton::spawn(nothing());
              mine.push_back(h.id());
              if (i % 100 == 0) co_await baton::sleep(0ms);  // may move to another thread
            }
            co_return mine;
          };
          std::vector<baton::task_handle<std::vector<std::uint64_t>>> hs;
          for (int i = 0; i < 8; ++i) hs.push_back(baton::spawn(spawner()));
          for (auto& h : hs) {
            auto mine = co_await h;
            ids.insert(ids.end(), mine.begin(), mine.end());
          }
        },
        threads(4));
    REQUIRE(ids.size() == 8 * 3000);
    CHECK(std::set<std::uint64_t>(ids.begin(), ids.end()).size() == ids.size());
  }

  TEST_CASE("tasks sharing one context never run at the same time on a threaded loop") {
    std::atomic<int> overlaps{0};
    run_task(
        [&]() -> task<> {
          baton::context shared;
          std::atomic<int> inside{0};
          std::vector<baton::task_handle<>> hs;
          for (int i = 0; i < 8; ++i) {
            hs.push_back(baton::spawn(
                [](std::atomic<int>& in, std::atomic<int>& ov) -> task<> {
                  for (int k = 0; k < 200; ++k) {
                    if (in.fetch_add(1) != 0) ++ov;
                    (void)tag.set(static_cast<std::uint64_t>(k));
                    in.fetch_sub(1);
                    co_await baton::sleep(0ms);
                  }
                }(inside, overlaps),
                shared));
          }
          for (auto& h : hs) co_await h;
        },
        threads(4));
    CHECK(overlaps == 0);
  }

  TEST_CASE("stress: 100000 tasks with random cancels on one thread") {
    std::atomic<int> wrong{0}, cancelled{0}, ok{0};
    run_task([&]() -> task<> { co_await stress(100000, wrong, cancelled, ok); });
    CHECK(wrong == 0);
    CHECK(ok + cancelled == 100000);
    CHECK(cancelled > 0);
  }

  TEST_CASE("stress: 100000 tasks with random cancels on four threads") {
    std::atomic<int> wrong{0}, cancelled{0}, ok{0};
    run_task([&]() -> task<> { co_await stress(100000, wrong, cancelled, ok); }, threads(4));
    CHECK(wrong == 0);
    CHECK(ok + cancelled == 100000);
    CHECK(cancelled > 0);
  }

  TEST_CASE("stress: 100000 tasks with random cancels on eight threads (more than cores)") {
    std::atomic<int> wrong{0}, cancelled{0}, ok{0};
    run_task([&]() -> task<> { co_await stress(100000, wrong, cancelled, ok); }, threads(8));
    CHECK(wrong == 0);
    CHECK(ok + cancelled == 100000);
    CHECK(cancelled > 0);
  }

  TEST_CASE("stress: tasks moving between lock, semaphore, event and queue with random cancels") {
    wait_stress w;
    int cancelled = 0;
    int requested = 0;
    run_task(
        [&]() -> task<> {
          std::mt19937 rng(2026);
          std::vector<baton::task_handle<>> hs;
          for (std::uint64_t i = 1; i <= 400; ++i)
            hs.push_back(baton::spawn(wait_everywhere(w, i)));
          co_await baton::sleep(0ms);
          w.go.set();
          // Each cancel lands wherever its task is (a round's wait, between waits on another
          // thread, or the hold at the end): none has finished, so every one of them counts.
          for (auto& h : hs) {
            if (rng() % 4 == 0 && h.cancel()) ++requested;
            if (rng() % 8 == 0) co_await baton::sleep(0ms);
          }
          w.hold.set();
          for (auto& h : hs) {
            try {
              co_await h;
            } catch (const baton::cancelled_error&) {
              ++cancelled;
            }
          }
        },
        threads(4));
    CHECK(w.wrong == 0);
    CHECK(w.too_many == 0);
    CHECK(w.guarded == w.locked_rounds.load());
    CHECK_FALSE(w.l.locked());
    CHECK_FALSE(w.sem.locked());
    CHECK(w.puts - w.gets == static_cast<int>(w.q.size()));  // nothing lost, nothing twice
    CHECK(requested > 0);
    CHECK(cancelled == requested);
  }

  TEST_CASE("get_context() of a handle is safe while its task runs and sets on another thread") {
    // Where a task runs is read from the task while the task itself replaces its context's
    // root with every set(): reading it must not race with those writes (TSan checks).
    int contexts = 0;
    run_task(
        [&]() -> task<> {
          std::atomic<bool> stop{false};
          auto h = baton::spawn(keep_setting(stop));
          for (int i = 0; i < 2000; ++i) {
            baton::context c = h.get_context();
            contexts += c == h.get_context() ? 1 : 0;
            if (i % 16 == 0) co_await baton::sleep(0ms);
          }
          stop = true;
          CHECK(co_await h > 0);
        },
        threads(2));
    CHECK(contexts == 2000);
  }

  TEST_CASE("a task woken by a loop thread stuck in a long step runs on another thread") {
    // The waker sets the event (the sleeper goes to its LIFO slot) and then does not suspend
    // until the sleeper has run: only another loop thread, taking it from the slot, can run it.
    for (unsigned n : {2u, 4u}) {
      std::binary_semaphore woken_ran(0);
      bool ran_in_time = false;
      run_task(
          [&]() -> task<> {
            baton::event e;
            auto sleeper = baton::spawn([](baton::event& ev, std::binary_semaphore& s) -> task<> {
              co_await ev.wait();
              s.release();
            }(e, woken_ran));
            co_await baton::sleep(0ms);  // the sleeper is waiting now (or soon: set() covers it)
            auto waker = baton::spawn([](baton::event& ev, std::binary_semaphore& s) -> task<bool> {
              ev.set();
              // A long step: blocks its loop thread. The bound only turns a hang into a failure.
              co_return s.try_acquire_for(std::chrono::seconds(60));
            }(e, woken_ran));
            ran_in_time = co_await waker;
            co_await sleeper;
          },
          threads(n));
      CHECK(ran_in_time);
    }
  }

  TEST_CASE("a task spawned by a loop thread stuck in a long step runs on another thread") {
    std::binary_semaphore child_ran(0);
    bool ran_in_time = false;
    run_task(
        [&]() -> task<> {
          auto parent = baton::spawn([](std::binary_semaphore& s) -> task<bool> {
            auto child = baton::spawn([](std::binary_semaphore& c) -> task<> {
              c.release();
              co_return;
            }(s));
            const bool ok = s.try_acquire_for(std::chrono::seconds(60));  // the long step
            co_await child;
            co_return ok;
          }(child_ran));
          ran_in_time = co_await parent;
        },
        threads(2));
    CHECK(ran_in_time);
  }

  TEST_CASE("tasks that yield forever, or wake each other forever, cannot starve the others") {
    // One yielder per thread and a pair waking each other through events (which keeps feeding
    // the LIFO slot): the other tasks, a chain of spawns and joins, must still finish.
    for (unsigned n : {1u, 2u, 4u}) {
      int chains_done = 0;
      run_task(
          [&]() -> task<> {
            std::atomic<bool> stop{false};
            std::vector<baton::task_handle<>> forever;
            for (unsigned i = 0; i < n; ++i) {
              forever.push_back(baton::spawn([](std::atomic<bool>& st) -> task<> {
                while (!st.load()) co_await baton::sleep(0ms);
              }(stop)));
            }
            baton::event ping, pong;
            auto player = [](baton::event& mine, baton::event& other,
                             std::atomic<bool>& st) -> task<> {
              while (!st.load()) {
                co_await mine.wait();
                mine.clear();
                other.set();
              }
              other.set();
            };
            forever.push_back(baton::spawn(player(ping, pong, stop)));
            forever.push_back(baton::spawn(player(pong, ping, stop)));
            ping.set();
            std::vector<baton::task_handle<int>> chains;
            for (int c = 0; c < 8; ++c) {
              chains.push_back(baton::spawn([]() -> task<int> {
                for (int k = 0; k < 200; ++k) co_await baton::spawn(nothing());
                co_return 1;
              }()));
            }
            for (auto& h : chains) chains_done += co_await h;
            stop = true;
            ping.set();
            pong.set();
            for (auto& h : forever) co_await h;
          },
          threads(n));
      CHECK(chains_done == 8);
    }
  }

  TEST_CASE("timers and Asio completions still run while yielding tasks keep every thread busy") {
    // A busy loop lets Asio run at most every 50 us (io_check_due): never is not an option.
    // Yielders fill every thread; a sleep (the loop's timer wheel, behind one Asio timer), an
    // Asio timer awaited with use_task and a handler posted to the loop's executor must all
    // complete while the yielders still run.
    for (unsigned n : {1u, 2u}) {
      bool slept = false, timer_fired = false, posted_ran = false;
      run_task(
          [&]() -> task<> {
            std::atomic<bool> stop{false};
            std::vector<baton::task_handle<>> yielders;
            for (unsigned i = 0; i < n + 1; ++i) {
              yielders.push_back(baton::spawn([](std::atomic<bool>& st) -> task<> {
                while (!st.load()) co_await baton::sleep(0ms);
              }(stop)));
            }
            co_await baton::sleep(2ms);
            slept = true;
            boost::asio::steady_timer t(baton::current_executor(), 1ms);
            co_await t.async_wait(baton::use_task);
            timer_fired = true;
            baton::event posted;
            boost::asio::post(baton::current_executor(), [&] {
              posted_ran = true;
              posted.set();
            });
            co_await posted.wait();
            stop = true;
            for (auto& h : yielders) co_await h;
          },
          threads(n));
      CHECK(slept);
      CHECK(timer_fired);
      CHECK(posted_ran);
    }
  }

  TEST_CASE("run() returns with tasks queued on every loop thread: each one is cancelled") {
    // Spawners meet on every thread (each waits for all of them to be running, so they run on
    // different threads), each fills its own queues with yielders, and main returns at once.
    std::atomic<int> cancelled{0};
    std::atomic<int> started{0};
    constexpr int spawners = 4;
    constexpr int per_spawner = 300;
    std::latch all_running(spawners);
    run_task(
        [&]() -> task<> {
          std::vector<baton::task_handle<>> hs;
          for (int i = 0; i < spawners; ++i) {
            hs.push_back(baton::spawn(
                [](std::latch& meet, std::atomic<int>& st, std::atomic<int>& can) -> task<> {
                  meet.arrive_and_wait();
                  for (int k = 0; k < per_spawner; ++k) {
                    baton::spawn([](std::atomic<int>& s, std::atomic<int>& c) -> task<> {
                      ++s;
                      try {
                        for (;;) co_await baton::sleep(0ms);
                      } catch (const baton::cancelled_error&) {
                        ++c;
                        throw;
                      }
                    }(st, can));
                  }
                  co_return;
                }(all_running, started, cancelled)));
          }
          for (auto& h : hs) co_await h;
        },
        threads(spawners));
    CHECK(cancelled == started.load());
  }

  TEST_CASE("a task whose shared context a plain thread holds runs once the thread leaves it") {
    // The task is parked (not retried at full speed) while the thread is inside
    // context::run, never runs inside it, and runs after it.
    for (unsigned n : {1u, 2u}) {
      baton::context shared;
      std::binary_semaphore entered(0), release(0);
      std::atomic<bool> thread_inside{false};
      bool overlapped = true;
      std::thread holder([&] {
        shared.run([&] {
          thread_inside = true;
          entered.release();
          release.acquire();
          thread_inside = false;
        });
      });
      entered.acquire();
      run_task(
          [&]() -> task<> {
            auto h = baton::spawn(
                [](std::atomic<bool>& inside) -> task<bool> {
                  co_return inside.load();
                }(thread_inside),
                shared);
            for (int i = 0; i < 100; ++i) co_await baton::sleep(0ms);  // it tries, and waits
            CHECK_FALSE(h.done());
            release.release();
            overlapped = co_await h;
          },
          threads(n));
      holder.join();
      CHECK_FALSE(overlapped);
    }
  }

  TEST_CASE("run on a threaded loop returns main's result") {
    CHECK(baton::run(
              []() -> task<int> {
                auto a = baton::spawn([]() -> task<int> { co_return 20; }());
                auto b = baton::spawn([]() -> task<int> { co_return 22; }());
                co_return co_await a + co_await b;
              }(),
              threads(3)) == 42);
  }

}  // TEST_SUITE

TEST_SUITE("threads mixed") {
  TEST_CASE("stress: coroutine tasks, fibers and to_thread mixed on four threads keep contexts") {
    std::atomic<int> wrong{0}, finished{0}, cancelled{0};
    run_task(
        [&]() -> task<> {
          std::mt19937 rng(777);
          std::vector<baton::task_handle<>> hs;
          constexpr int units = 3000;
          for (int i = 0; i < units; ++i) {
            const std::uint64_t id = static_cast<std::uint64_t>(i) + 1;
            switch (i % 3) {
              case 0:  // a coroutine task hopping through to_thread and the loop
                hs.push_back(baton::spawn([](std::uint64_t me, std::atomic<int>& bad) -> task<> {
                  (void)tag.set(me);
                  for (int k = 0; k < 3; ++k) {
                    const std::uint64_t seen = co_await baton::to_thread([] { return tag.get(); });
                    if (seen != me) ++bad;
                    co_await baton::sleep(0ms);
                    if (tag.get() != me) ++bad;
                  }
                }(id, wrong)));
                break;
              case 1:  // a fiber awaiting sleeps, tasks and to_thread in blocking style
                hs.push_back(baton::spawn_fiber([me = id, &bad = wrong] {
                  (void)tag.set(me);
                  for (int k = 0; k < 3; ++k) {
                    baton::await(baton::sleep(std::chrono::microseconds(k)));
                    if (tag.get() != me) ++bad;
                    if (baton::await(baton::to_thread([] { return tag.get(); })) != me) ++bad;
                  }
                }));
                break;
              default:  // a to_thread job that sets in its copy: nothing may leak back
                hs.push_back(baton::spawn([](std::uint64_t me, std::atomic<int>& bad) -> task<> {
                  (void)tag.set(me);
                  co_await baton::to_thread([] { (void)tag.set(0); });
                  if (tag.get() != me) ++bad;
                }(id, wrong)));
            }
            if (rng() % 4 == 0) hs[rng() % hs.size()].cancel();
            if (i % 200 == 0) co_await baton::sleep(0ms);
          }
          for (auto& h : hs) {
            try {
              co_await h;
              ++finished;
            } catch (const baton::cancelled_error&) {
              ++cancelled;
            }
          }
        },
        threads(4));
    CHECK(wrong == 0);
    CHECK(finished + cancelled == 3000);
    CHECK(cancelled > 0);
  }

}  // TEST_SUITE

namespace {

/// The flow stress: vars of random flows, four of them mirrored into thread_locals, and tasks
/// that know what they must see (their model) and check it after every await.
namespace flow_stress {

constexpr std::size_t nvars = 12;
constexpr int total_tasks = 10000;
using model = std::array<std::optional<int>, nvars>;

thread_local std::array<std::optional<int>, nvars> mirrored;  // what each mirror last said

struct world {
  std::vector<std::unique_ptr<baton::context_var<int>>> vars;
  std::array<bool, nvars> has_mirror{};
  std::atomic<int> spawned{0};
  std::atomic<int> checks{0};
  std::atomic<int> wrong{0};
  std::mutex first_mutex;
  std::string first;  // the first mismatch, for the report

  explicit world(std::mt19937& rng) {
    for (std::size_t i = 0; i < nvars; ++i) {
      const auto flow = static_cast<baton::inherit>(rng() % 3);
      vars.push_back(std::make_unique<baton::context_var<int>>("v" + std::to_string(i),
                                                               baton::var_options{flow}));
      if (i % 3 == 0) {
        has_mirror[i] = true;
        vars[i]->on_switch([i](const int* p) {
          mirrored[i] = p != nullptr ? std::optional<int>(*p) : std::nullopt;
        });
      }
    }
  }

  /// What a hand-off of this kind keeps of m.
  model keep(const model& m, bool thread_hand_off) const {
    model out = m;
    for (std::size_t i = 0; i < nvars; ++i) {
      const baton::inherit f = vars[i]->flow();
      if (f == baton::inherit::never || (thread_hand_off && f == baton::inherit::tasks)) {
        out[i].reset();
      }
    }
    return out;
  }

  /// Compares this thread's current context and mirrors with m.
  void check(const model& m, const char* where) {
    checks.fetch_add(1, std::memory_order_relaxed);
    for (std::size_t i = 0; i < nvars; ++i) {
      const std::optional<int> got = vars[i]->try_get();
      const bool mirror_wrong = has_mirror[i] && mirrored[i] != got;
      if (got != m[i] || mirror_wrong) {
        if (wrong.fetch_add(1, std::memory_order_relaxed) == 0) {
          std::lock_guard lock(first_mutex);
          first = std::string(where) + ": var " + std::to_string(i) + " got " +
                  (got ? std::to_string(*got) : "none") + ", expected " +
                  (m[i] ? std::to_string(*m[i]) : "none") + (mirror_wrong ? " (mirror)" : "");
        }
      }
    }
  }
};

task<> walker(world& w, model m, std::uint32_t seed) {
  std::mt19937 rng(seed);
  w.check(m, "start");
  std::vector<std::pair<baton::task_handle<>, int>> children;
  for (int step = 0; step < 6; ++step) {
    switch (rng() % 5) {
      case 0: {
        const std::size_t i = rng() % nvars;
        const int v = static_cast<int>(rng() % 1000);
        (void)w.vars[i]->set(v);
        m[i] = v;
        w.check(m, "set");
        break;
      }
      case 1:
        co_await baton::sleep(0ms);
        w.check(m, "sleep");
        break;
      case 2:
        if (w.spawned.fetch_add(1, std::memory_order_relaxed) < total_tasks) {
          children.emplace_back(baton::spawn(walker(w, w.keep(m, false), rng())), 0);
          w.check(m, "spawn");
        }
        break;
      case 3: {
        const model expect = w.keep(m, true);
        const std::size_t i = rng() % nvars;
        co_await baton::to_thread([&w, &expect, i] {
          w.check(expect, "to_thread job");
          (void)w.vars[i]->set(-1);  // gone when the job ends
        });
        w.check(m, "to_thread");
        break;
      }
      default:
        if (!children.empty()) {
          co_await children.back().first;
          children.pop_back();
          w.check(m, "join");
        }
        break;
    }
  }
  for (auto& c : children) co_await c.first;
  w.check(m, "end");
}

}  // namespace flow_stress
}  // namespace

TEST_SUITE("threads and flow") {
  TEST_CASE("stress: 10000 tasks of random flows, spawns and to_thread on two threads") {
    std::mt19937 rng(12);
    flow_stress::world w(rng);
    run_task(
        [&]() -> task<> {
          flow_stress::model m;
          for (std::size_t i = 0; i < flow_stress::nvars; i += 2) {
            (void)w.vars[i]->set(static_cast<int>(i));
            m[i] = static_cast<int>(i);
          }
          std::vector<baton::task_handle<>> roots;
          for (int i = 0; i < flow_stress::total_tasks / 10; ++i) {
            w.spawned.fetch_add(1, std::memory_order_relaxed);
            roots.push_back(baton::spawn(flow_stress::walker(w, w.keep(m, false), rng())));
            if (roots.size() % 64 == 0) co_await baton::sleep(0ms);
          }
          for (auto& r : roots) co_await r;
          w.check(m, "main");
        },
        threads(2));
    INFO(w.first);
    CHECK(w.wrong.load() == 0);
    CHECK(w.spawned.load() >= flow_stress::total_tasks);  // the walkers spawned the rest
    CHECK(w.checks.load() > 3 * flow_stress::total_tasks);
  }
}  // TEST_SUITE
