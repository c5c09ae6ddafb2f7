// SPDX-License-Identifier: BSL-1.0
// Reference counts: the handle that holds one reference (counted_ref) and dropping one (drop_ref).
#pragma once

#include <atomic>
#include <utility>

namespace baton::detail {

/// Drops one reference from refs; true when it was the last (the caller then frees the object).
/// A count of 1 is the caller's alone (nobody can copy a reference they do not hold), so the
/// common single-owner case skips the read-modify-write. acquire on that load and acq_rel on
/// the decrement: whoever frees the object has seen every other owner's use of it.
template <class Count>
[[gnu::always_inline]] inline bool drop_ref(std::atomic<Count>& refs) noexcept {
  return refs.load(std::memory_order_acquire) == 1 ||
         refs.fetch_sub(1, std::memory_order_acq_rel) == 1;
}

/// One counted reference to a T (nullptr after a move): the copy, move and destruction of
/// context, token and task_handle. Retain and Release count the references of a T.
template <class T, void (*Retain)(T*) noexcept, void (*Release)(T*) noexcept>
class counted_ref {
 public:
  counted_ref() noexcept = default;
  explicit counted_ref(T* adopt) noexcept : p_(adopt) {}
  counted_ref(const counted_ref& o) noexcept : p_(o.p_) {
    if (p_ != nullptr) Retain(p_);
  }
  counted_ref(counted_ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  counted_ref& operator=(counted_ref o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~counted_ref() {
    if (p_ != nullptr) Release(p_);
  }

  T* get() const noexcept { return p_; }
  T* operator->() const noexcept { return p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }

 private:
  T* p_ = nullptr;
};

}  // namespace baton::detail
