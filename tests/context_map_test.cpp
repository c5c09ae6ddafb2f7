// SPDX-License-Identifier: BSL-1.0
// detail/context_map.hpp: the ref cache that lets a spawn reuse the reference a finished child
// dropped, and the blocks map nodes live in. The rules under test: a cached release only ever
// defers a decrement, so no node dies while a reference to it exists, and none outlives its last
// reference past a flush; every node owns the whole cache lines it touches; set_untracked()
// makes one root of several sets.
#include <baton/detail/context_map.hpp>

#include <baton/context.hpp>
#include <baton/context_var.hpp>
#include <baton/detail/access.hpp>
#include <baton/run.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>
#include <baton/token.hpp>

#include <doctest/doctest.h>
#include <support/counted.hpp>
#include <support/thread_mirror.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <set>
#include <thread>
#include <vector>

using baton_test::counted;
namespace detail = baton::detail;

namespace {

/// Installs a cache on this thread for one test, flushing and removing it at the end.
struct scoped_cache {
  detail::ref_cache cache;
  detail::ref_cache* prev = detail::install_ref_cache(&cache);
  ~scoped_cache() {
    detail::flush(cache);
    detail::install_ref_cache(prev);
  }
};

/// A one-entry map whose value counts itself (boxed: counted is not trivially copyable).
detail::map_node* node_with_value(detail::var_key key) {
  return detail::insert(nullptr, detail::make_entry<counted>(key, counted(7)));
}

std::uint32_t refs(const detail::map_node* n) { return n->refs.load(); }

/// A map whose two keys share their low five bits, so its root holds them in a child node.
detail::map_node* map_with_child_node() {
  detail::map_node* one = node_with_value(1 << 5);
  detail::map_node* two = detail::insert(one, detail::make_entry<counted>(2 << 5, counted(2)));
  detail::release(one);
  return two;
}

/// n one-entry nodes with keys from `first`, each held twice (as by a spawner and a child).
std::vector<detail::map_node*> twice_held_nodes(detail::var_key first, std::size_t n) {
  std::vector<detail::map_node*> nodes;
  for (detail::var_key k = first; k < first + n; ++k) {
    nodes.push_back(node_with_value(k));
    detail::retain(nodes.back());
  }
  return nodes;
}

/// Checks that n and every node below it sit in whole 64-byte lines of their own: the block is
/// 64-aligned and its `lines` cover the node's slots. Returns how many nodes it checked.
int check_node_lines(const detail::map_node* n) {
  const auto address = reinterpret_cast<std::uintptr_t>(n);
  CHECK(address % 64 == 0);
  const std::uint32_t all = n->entries | n->children;
  const std::size_t used =
      offsetof(detail::map_node, slots) + sizeof(detail::slot) * std::popcount(all);
  CHECK(std::size_t{n->lines} * 64 >= used);
  CHECK(std::size_t{n->lines} * 64 < used + 64 + sizeof(detail::slot));  // no line to spare
  int nodes = 1;
  for (std::uint32_t c = n->children; c != 0; c &= c - 1) {
    nodes += check_node_lines(n->slots[n->index[std::countr_zero(c)]].child);
  }
  return nodes;
}

baton::task<int> read_value(const baton::context_var<counted>& var) { co_return var.get().value; }

}  // namespace

TEST_SUITE("context") {
  TEST_CASE("a release while another owner remains is kept, and the next retain takes it back") {
    scoped_cache s;
    const int before = counted::live.load();
    detail::map_node* n = node_with_value(1);
    detail::retain(n);  // two owners: the spawner and a child
    REQUIRE(refs(n) == 2);
    detail::release(n);  // the child ends
    CHECK(s.cache.count == 1);
    CHECK(refs(n) == 2);  // deferred, not lost
    detail::retain(n);    // the next child: the kept reference moves to it
    CHECK(s.cache.count == 0);
    CHECK(refs(n) == 2);
    detail::release(n);
    CHECK(counted::live.load() == before + 1);
    detail::release(n);  // the spawner's: every reference is now ours, so it goes at once
    CHECK(s.cache.count == 0);
    CHECK(counted::live.load() == before);
  }

  TEST_CASE("without a cache every release decrements at once") {
    REQUIRE(detail::current_ref_cache == nullptr);
    const int before = counted::live.load();
    detail::map_node* n = node_with_value(2);
    detail::retain(n);
    detail::release(n);
    CHECK(refs(n) == 1);
    detail::release(n);
    CHECK(counted::live.load() == before);
  }

  TEST_CASE("a node whose other owner let go on another thread is freed by flush") {
    const int before = counted::live.load();
    {
      scoped_cache s;
      detail::map_node* n = node_with_value(3);
      detail::retain(n);
      detail::release(n);  // kept here
      REQUIRE(s.cache.count == 1);
      std::thread([n] { detail::release(n); }).join();  // no cache there: decrements
      CHECK(refs(n) == 1);                              // only the kept reference is left
      CHECK(counted::live.load() == before + 1);
      detail::flush(s.cache);
      CHECK(s.cache.count == 0);
      CHECK(counted::live.load() == before);
    }
  }

  TEST_CASE("a full cache releases its oldest reference for real") {
    scoped_cache s;
    const int before = counted::live.load();
    const auto nodes = twice_held_nodes(10, detail::ref_cache::capacity + 1);
    for (detail::map_node* n : nodes) detail::release(n);
    CHECK(s.cache.count == detail::ref_cache::capacity);
    CHECK(refs(nodes.front()) == 1);  // evicted: decremented
    for (std::size_t i = 1; i < nodes.size(); ++i) CHECK(refs(nodes[i]) == 2);
    for (detail::map_node* n : nodes) detail::release(n);
    CHECK(s.cache.count == 0);
    CHECK(counted::live.load() == before);
  }

  TEST_CASE("evicting a node whose children come back into the full cache loses nothing") {
    const int before = counted::live.load();
    {
      scoped_cache s;
      // a has a child node C; b = a plus one more key, a new root that shares C (C is then
      // held by a and b).
      detail::map_node* a = map_with_child_node();
      detail::map_node* b = detail::insert(a, detail::make_entry<counted>(7, counted(3)));
      // Park a's only reference in the cache: kept here, then the other owner lets go.
      detail::retain(a);
      detail::release(a);
      std::thread([a] { detail::release(a); }).join();
      REQUIRE(refs(a) == 1);
      // Fill the cache behind it, then one more: a is evicted and freed, and freeing it
      // releases C into the full cache.
      const auto others = twice_held_nodes(100, detail::ref_cache::capacity);
      for (detail::map_node* n : others) detail::release(n);
      CHECK(s.cache.count == detail::ref_cache::capacity);
      CHECK(detail::size(b) == 3);
      for (detail::map_node* n : others) detail::release(n);
      detail::release(b);
    }
    CHECK(counted::live.load() == before);
  }

  TEST_CASE("a node's children go through the cache too, and all of it is freed in the end") {
    const int before = counted::live.load();
    {
      scoped_cache s;
      detail::map_node* b = map_with_child_node();  // its child went through release() once
      CHECK(detail::size(b) == 2);
      detail::retain(b);
      detail::release(b);
      detail::release(b);
    }
    CHECK(counted::live.load() == before);
  }

  TEST_CASE("children spawned from a populated context release its values by the end of run") {
    const int before = counted::live.load();
    baton::context_var<counted> value("value");
    baton::run([&]() -> baton::task<> {
      (void)value.set(counted(1));
      std::vector<baton::task_handle<int>> hs;
      for (int i = 0; i < 100; ++i) {
        hs.push_back(baton::spawn(read_value(value)));
      }
      int sum = 0;
      for (auto& h : hs) sum += co_await h;
      CHECK(sum == 100);
      hs.clear();
      (void)value.set(counted(2));  // the first value's last owners were the finished children
    }());
    CHECK(counted::live.load() == before);
  }

  TEST_CASE("every map node owns the cache lines it touches, through inserts and erases") {
    // Keys 1..40 fill a root's 32 positions and, from 33 on, share low bits with 1..8: child
    // nodes. Erasing every third one makes nodes in blocks made for one slot more.
    detail::map_node* map = nullptr;
    int checked = 0;
    for (detail::var_key k = 1; k <= 40; ++k) {
      detail::map_node* next = detail::insert(map, detail::make_entry<int>(k, static_cast<int>(k)));
      if (map != nullptr) detail::release(map);
      map = next;
      checked += check_node_lines(map);
    }
    for (detail::var_key k = 1; k <= 40; k += 3) {
      detail::map_node* next = detail::erase(map, k);
      detail::release(map);
      map = next;
      checked += check_node_lines(map);
    }
    CHECK(checked > 54);  // children were met, not only roots
    for (detail::var_key k = 2; k <= 40; k += 3) CHECK(detail::find(map, k) != nullptr);
    for (detail::var_key k = 1; k <= 40; k += 3) CHECK(detail::find(map, k) == nullptr);
    detail::release(map);
  }

  TEST_CASE("a freed node's block serves the next node of its size, also on the freeing thread") {
    detail::map_node* first = node_with_value(3);
    const void* block = first;
    detail::release(first);
    detail::map_node* second = node_with_value(4);
    CHECK(static_cast<const void*>(second) == block);  // this thread's free list had it
    // Freed on another thread, the block joins that thread's list, and serves it next.
    const void* reused = nullptr;
    std::thread([&] {
      detail::release(second);
      detail::map_node* third = node_with_value(5);
      reused = third;
      detail::release(third);
    }).join();
    CHECK(reused == block);
  }

  TEST_CASE("blocks a thread frees beyond what it keeps serve other threads' nodes") {
    // 200 nodes made here and released on another thread: that thread keeps 64 and passes the
    // rest to the process's spare list, where this thread's next nodes come from (else they
    // would be carved from fresh slabs, at addresses never used before).
    std::vector<detail::map_node*> made;
    for (detail::var_key k = 1; k <= 200; ++k) made.push_back(node_with_value(k));
    const std::set<const void*> first(made.begin(), made.end());
    std::thread([&] {
      for (detail::map_node* n : made) detail::release(n);
    }).join();
    made.clear();
    for (detail::var_key k = 1; k <= 200; ++k) made.push_back(node_with_value(k));
    const auto reused = std::count_if(
        made.begin(), made.end(), [&](const detail::map_node* n) { return first.count(n) != 0; });
    CHECK(reused >= 100);
    for (detail::var_key k = 1; k <= 200; ++k) {
      const detail::slot* s = detail::find(made[k - 1], k);  // a reused block holds its new node
      REQUIRE(s != nullptr);
      CHECK(detail::load<counted>(*s).value == 7);
      detail::release(made[k - 1]);
    }
  }

  TEST_CASE("nodes freed by a thread's exit, after its node cache is gone, are not lost") {
    // The implicit context is made before the thread's first node, so its thread-exit
    // destructor runs after the node cache's: the last release meets no cache and goes to the
    // spare list (ASan's leak check and the value count see the rest).
    const int before = counted::live.load();
    baton::context_var<counted> value("value");
    std::thread([&] {
      (void)value.set(counted(1));
      (void)value.set(counted(2));
      CHECK(value.get().value == 2);
    }).join();
    CHECK(counted::live.load() == before);
  }

  TEST_CASE("set_untracked sets several vars as one change, and a mirror hears of it once") {
    struct tag;
    using mirror = baton_test::thread_mirror<tag, int>;
    const int before = counted::live.load();
    {
      baton::context_var<int> number("number");
      baton::context_var<counted> boxed("boxed");
      baton::context_var<std::string> text("text");
      mirror::install(number);
      baton::context().run([&] {  // an empty map: both in one new node (insert_new)
        const detail::slot two[] = {
            detail::make_entry<int>(detail::access::key(number), 4),
            detail::make_entry<counted>(detail::access::key(boxed), counted(8)),
        };
        detail::set_untracked(two, 2);
        CHECK(number.get() == 4);
        CHECK(boxed.get().value == 8);
        CHECK(mirror::calls == 1);
      });
      mirror::calls = 0;
      baton::context().run([&] {  // text is there already: one insert each
        auto t = text.set("before");
        const detail::slot entries[] = {
            detail::make_entry<int>(detail::access::key(number), 5),
            detail::make_entry<counted>(detail::access::key(boxed), counted(9)),
            detail::make_entry<std::string>(detail::access::key(text), std::string("after")),
        };
        detail::set_untracked(entries, 3);
        CHECK(number.get() == 5);
        CHECK(boxed.get().value == 9);
        CHECK(text.get() == "after");
        CHECK(mirror::seen == 5);
        CHECK(mirror::calls == 1);
        detail::set_untracked(entries, 0);  // nothing: no change, no report
        CHECK(mirror::calls == 1);
      });
    }
    CHECK(counted::live.load() == before);  // the boxes went with the context
  }
}