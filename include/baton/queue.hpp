// SPDX-License-Identifier: BSL-1.0
// queue<T>: a FIFO queue between tasks, optionally bounded; like asyncio.Queue.
#pragma once

// Contract:
//   queue<T>(maxsize = 0)  holds at most maxsize items; 0 means unbounded.
//   co_await q.put(v)      appends v: at once when there is room, else waits for a get (FIFO
//                          among waiting putters). Never waits on an unbounded queue.
//   co_await q.get()       removes and returns the oldest item: at once when there is one,
//                          else waits for a put (FIFO among waiting getters: an item put while
//                          getters wait goes straight to the oldest of them).
//   try_put(v)             put without waiting: false (v untouched) when full.
//   try_get()              get without waiting: nullopt when empty.
//   size(), empty(), full(), maxsize()   snapshots.
//   task_done()            marks one item taken by get() as processed; runtime_error when
//                          called more times than items were put (asyncio raises ValueError).
//   co_await q.join()      waits until every item put has been marked task_done().
// T must be nothrow-move-constructible (items move under the queue's mutex); use a
// std::unique_ptr for others.
//   co_await q.put(v) / q.get() / q.join():
//     Context:      the waiting task's own context, unchanged, on whatever loop thread it
//                   resumes.
//     Exceptions:   cancelled_error when the task is cancelled while waiting (or was cancelled
//                   before it had to wait); std::bad_alloc from the item storage (nothing
//                   is put or taken then).
//     Cancellation: cancel() wakes the waiter at once with cancelled_error and it leaves the
//                   queue; a cancelled put() did not put its item. Items are never lost: a
//                   getter cancelled just after an item was handed to it puts the item back
//                   at the front (or hands it to the next getter), which may briefly take the
//                   queue past maxsize. A putter cancelled just after its item went into the
//                   queue has put it: put() returns normally and the cancellation is delivered
//                   at the task's next suspension point.
//     Thread-safety: any loop thread may put, get and query one queue at once; try_put,
//                   try_get, task_done and the queries also from threads outside the loop.
//     Example:      see below.
// The queue must outlive its waiters; its destructor destroys the items left in it.
//
// Example:
//   baton::queue<std::string> lines(100);
//   // producer:  co_await lines.put(std::move(line));   (waits while 100 are queued)
//   // consumer:  std::string line = co_await lines.get();

#include <baton/detail/wait_list.hpp>
#include <baton/errors.hpp>

#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <type_traits>

namespace baton {

template <class T>
class queue {
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "baton: queue<T> needs a nothrow-move-constructible T: use "
                "queue<std::unique_ptr<T>>");

 public:
  /// co_await q.put(v): see the contract above.
  class [[nodiscard]] put_awaitable : public detail::wait_op<put_awaitable> {
   public:
    put_awaitable(queue& q, T v) noexcept;
    put_awaitable(put_awaitable&&) noexcept = default;

   private:
    friend queue;
    friend detail::wait_op<put_awaitable>;
    static const detail::wait_ops& ops() noexcept { return put_ops; }
    T item_;
  };

  /// co_await q.get(): see the contract above.
  class [[nodiscard]] get_awaitable : public detail::wait_op<get_awaitable> {
   public:
    explicit get_awaitable(queue& q) noexcept;
    get_awaitable(get_awaitable&&) noexcept = default;
    T await_resume();

   private:
    friend queue;
    friend detail::wait_op<get_awaitable>;
    static const detail::wait_ops& ops() noexcept { return get_ops; }
    std::optional<T> item_;
  };

  /// co_await q.join(): see the contract above.
  class [[nodiscard]] join_awaitable : public detail::wait_op<join_awaitable> {
   public:
    explicit join_awaitable(queue& q) noexcept;

   private:
    friend detail::wait_op<join_awaitable>;
    static const detail::wait_ops& ops() noexcept { return join_ops; }
  };

  explicit queue(std::size_t maxsize = 0) noexcept : maxsize_(maxsize) {}
  queue(const queue&) = delete;
  queue& operator=(const queue&) = delete;

  [[nodiscard]] put_awaitable put(T v) noexcept { return put_awaitable(*this, std::move(v)); }
  [[nodiscard]] get_awaitable get() noexcept { return get_awaitable(*this); }
  [[nodiscard]] join_awaitable join() noexcept { return join_awaitable(*this); }

  bool try_put(const T& v);
  bool try_put(T&& v);
  std::optional<T> try_get();
  void task_done();

  std::size_t size() const;
  bool empty() const;
  bool full() const;
  std::size_t maxsize() const noexcept { return maxsize_; }

 private:
  // All under mutex_.
  bool is_full() const noexcept { return maxsize_ != 0 && items_.size() >= maxsize_; }
  template <class U>
  bool put_locked(U&& v, detail::wake_list& wake);
  bool get_locked(std::optional<T>& out, detail::wake_list& wake);

  static bool put_try_take(detail::wait_node& n, detail::wake_list& wake);
  static bool put_available(const detail::wait_node& n) noexcept;
  static bool get_try_take(detail::wait_node& n, detail::wake_list& wake);
  static bool get_available(const detail::wait_node& n) noexcept;
  static bool get_undo(detail::wait_node& n) noexcept;
  static bool join_try_take(detail::wait_node& n, detail::wake_list& wake);
  static bool join_available(const detail::wait_node& n) noexcept;
  static bool join_undo(detail::wait_node&) noexcept { return true; }
  static bool put_undo(detail::wait_node&) noexcept { return false; }

  const std::size_t maxsize_;
  mutable std::mutex mutex_;
  std::deque<T> items_;
  std::size_t unfinished_ = 0;  // items put and not yet task_done()
  detail::wait_list getters_;   // only while items_ is empty
  detail::wait_list putters_;   // only while the queue is full
  detail::wait_list joiners_;   // only while unfinished_ > 0

  // After the members they point to (a static member's initializer sees only what precedes).
  static constexpr detail::wait_ops put_ops =
      detail::make_wait_ops<queue, &queue::mutex_, &queue::putters_>(
          "queue.put", &put_try_take, &put_available, nullptr, &put_undo);
  static constexpr detail::wait_ops get_ops =
      detail::make_wait_ops<queue, &queue::mutex_, &queue::getters_>(
          "queue.get", &get_try_take, &get_available, nullptr, &get_undo);
  static constexpr detail::wait_ops join_ops =
      detail::make_wait_ops<queue, &queue::mutex_, &queue::joiners_>(
          "queue.join", &join_try_take, &join_available, nullptr, &join_undo);
};

}  // namespace baton

#include <baton/detail/queue_impl.hpp>
