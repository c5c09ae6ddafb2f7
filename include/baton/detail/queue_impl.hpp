// SPDX-License-Identifier: BSL-1.0
// queue<T>'s member definitions (included at the end of <baton/queue.hpp>).
#pragma once

// Hand-over rules, all under the queue's mutex (so a waiter never has to retry):
//   put with getters waiting      the item goes straight into the oldest getter's node.
//   get with putters waiting      the oldest putter's item moves into the freed slot.
//   task_done() reaching zero     every joiner is granted.
// Granted tasks are scheduled by a wake_list after the mutex is released.

#include <baton/queue.hpp>

#include <utility>

namespace baton {

// ---------------------------------------------------------------------------------------------
// awaiters

template <class T>
queue<T>::put_awaitable::put_awaitable(queue& q, T v) noexcept
    : detail::wait_op<put_awaitable>(&q), item_(std::move(v)) {}

template <class T>
queue<T>::get_awaitable::get_awaitable(queue& q) noexcept : detail::wait_op<get_awaitable>(&q) {}

template <class T>
T queue<T>::get_awaitable::await_resume() {
  // Throws cancelled_error (after get_undo) when cancelled.
  detail::wait_op<get_awaitable>::await_resume();
  return std::move(*item_);
}

template <class T>
queue<T>::join_awaitable::join_awaitable(queue& q) noexcept : detail::wait_op<join_awaitable>(&q) {}

// ---------------------------------------------------------------------------------------------
// under the mutex

template <class T>
template <class U>
bool queue<T>::put_locked(U&& v, detail::wake_list& wake) {
  if (detail::task_base* g = getters_.pop_front()) {
    // Getters wait only while items_ is empty: the item goes to the oldest one.
    get_awaitable::from(detail::node_of(g)).item_.emplace(std::forward<U>(v));
    wake.add(g);
  } else if (!is_full()) {
    items_.push_back(std::forward<U>(v));  // strong guarantee: on bad_alloc nothing changed
  } else {
    return false;
  }
  ++unfinished_;
  return true;
}

template <class T>
bool queue<T>::get_locked(std::optional<T>& out, detail::wake_list& wake) {
  if (items_.empty()) return false;
  // One slot frees up: the oldest waiting putter fills it. Its item is appended before the
  // front is taken, so a bad_alloc leaves everything as it was.
  if (!putters_.empty() && (items_.size() - 1 < maxsize_)) {
    detail::task_base* p = putters_.front();
    items_.push_back(std::move(put_awaitable::from(detail::node_of(p)).item_));
    putters_.pop_front();
    wake.add(p);
    ++unfinished_;
  }
  out.emplace(std::move(items_.front()));
  items_.pop_front();
  return true;
}

template <class T>
bool queue<T>::put_try_take(detail::wait_node& n, detail::wake_list& wake) {
  auto& a = put_awaitable::from(n);
  return static_cast<queue*>(n.owner)->put_locked(std::move(a.item_), wake);
}

template <class T>
bool queue<T>::put_available(const detail::wait_node& n) noexcept {
  const auto* q = static_cast<const queue*>(n.owner);
  return !q->getters_.empty() || !q->is_full();
}

template <class T>
bool queue<T>::get_try_take(detail::wait_node& n, detail::wake_list& wake) {
  auto& a = get_awaitable::from(n);
  return static_cast<queue*>(n.owner)->get_locked(a.item_, wake);
}

template <class T>
bool queue<T>::get_available(const detail::wait_node& n) noexcept {
  return !static_cast<const queue*>(n.owner)->items_.empty();
}

template <class T>
bool queue<T>::get_undo(detail::wait_node& n) noexcept {
  // Cancellation beat the hand-over: the item goes back to where it was, the front (it is
  // older than anything queued since), or to the next getter when one waits (then the queue
  // is empty).
  auto& a = get_awaitable::from(n);
  auto* q = static_cast<queue*>(n.owner);
  detail::wake_list wake;
  std::lock_guard g(q->mutex_);
  if (detail::task_base* next = q->getters_.pop_front()) {
    get_awaitable::from(detail::node_of(next)).item_.emplace(std::move(*a.item_));
    wake.add(next);
  } else {
    q->items_.push_front(std::move(*a.item_));  // bad_alloc here terminates (noexcept)
  }
  a.item_.reset();
  return true;
}

template <class T>
bool queue<T>::join_try_take(detail::wait_node& n, detail::wake_list&) {
  return static_cast<queue*>(n.owner)->unfinished_ == 0;
}

template <class T>
bool queue<T>::join_available(const detail::wait_node& n) noexcept {
  return static_cast<const queue*>(n.owner)->unfinished_ == 0;
}

// ---------------------------------------------------------------------------------------------
// public members

template <class T>
bool queue<T>::try_put(const T& v) {
  detail::wake_list wake;  // schedules after the guard below unlocks
  std::lock_guard g(mutex_);
  return put_locked(v, wake);
}

template <class T>
bool queue<T>::try_put(T&& v) {
  detail::wake_list wake;
  std::lock_guard g(mutex_);
  return put_locked(std::move(v), wake);
}

template <class T>
std::optional<T> queue<T>::try_get() {
  std::optional<T> out;
  detail::wake_list wake;
  std::lock_guard g(mutex_);
  get_locked(out, wake);
  return out;
}

template <class T>
void queue<T>::task_done() {
  detail::wake_list wake;
  std::lock_guard g(mutex_);
  if (unfinished_ == 0) {
    throw baton::runtime_error("baton: queue::task_done() called more times than items were put");
  }
  if (--unfinished_ == 0) {
    while (detail::task_base* j = joiners_.pop_front()) wake.add(j);
  }
}

template <class T>
std::size_t queue<T>::size() const {
  std::lock_guard g(mutex_);
  return items_.size();
}

template <class T>
bool queue<T>::empty() const {
  std::lock_guard g(mutex_);
  return items_.empty();
}

template <class T>
bool queue<T>::full() const {
  std::lock_guard g(mutex_);
  return is_full();
}

}  // namespace baton
