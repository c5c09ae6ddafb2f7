// SPDX-License-Identifier: BSL-1.0
// detail/context_map.hpp: the ref cache that lets a spawn reuse the reference a finished child
// dropped. The rule under test: a cached release only ever defers a decrement, so no node dies
// while a reference to it exists, and none outlives its last reference past a flush.
#include <baton/detail/context_map.hpp>

#include <baton/context.hpp>
#include <baton/context_var.hpp>
#include <baton/run.hpp>
#include <baton/spawn.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include <doctest/doctest.h>
#include <support/counted.hpp>

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
}
