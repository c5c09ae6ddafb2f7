// SPDX-License-Identifier: BSL-1.0
// Fibers: a Boost.Context fiber per stackful task, switched to and from by its driving task.

#include <baton/fiber.hpp>

#include "loop.hpp"

#include <boost/context/fiber.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>

#include <mutex>
#include <vector>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define BATON_TSAN_FIBERS 1
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define BATON_ASAN_FIBERS 1
#endif

// The sanitizers cannot see Boost.Context's stack switches by themselves; each switch below is
// announced to them (TSan: which fiber runs; ASan: which stack is in use).

namespace baton::detail {

namespace ctx = boost::context;

struct fiber_core::impl {
  ctx::fiber fiber;                // the suspended fiber (while the driver runs)
  ctx::fiber caller;               // the suspended driver (while the fiber runs)
  fiber_core* previous = nullptr;  // the fiber current before resume() (nested: none)
#if defined(BATON_TSAN_FIBERS)
  void* tsan_fiber = nullptr;
  void* tsan_caller = nullptr;
#endif
  ctx::stack_context stack{};  // the fiber's stack, recorded by recording_stack
#if defined(BATON_ASAN_FIBERS)
  const void* caller_bottom = nullptr;
  std::size_t caller_size = 0;
#endif

  void entered_fiber() noexcept {  // on the fiber, right after a switch to it
#if defined(BATON_ASAN_FIBERS)
    __sanitizer_finish_switch_fiber(nullptr, &caller_bottom, &caller_size);
#endif
  }
  void leaving_fiber(bool dying) noexcept {  // on the fiber, right before a switch away
#if defined(BATON_TSAN_FIBERS)
    __tsan_switch_to_fiber(tsan_caller, 0);
#endif
#if defined(BATON_ASAN_FIBERS)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(dying ? nullptr : &fake, caller_bottom, caller_size);
    fake_on_fiber = fake;
#endif
    (void)dying;
  }
#if defined(BATON_ASAN_FIBERS)
  void* fake_on_fiber = nullptr;
#endif
};

namespace {

/// Guard-paged stacks kept for the next fiber of the same size. Mapping a stack (mmap, the
/// guard page's mprotect, munmap, the first page fault) is nearly all the cost of a fiber's
/// spawn + join, so a finished fiber's stack comes back here instead of going to the kernel.
/// At most `depth` stacks per size are kept; a burst of fibers gives the rest back. A kept
/// stack stays mapped, and the pages its last fiber touched stay resident.
class stack_cache {
 public:
  static constexpr std::size_t depth = 64;

  /// Leaked on purpose: a fiber may end during static destruction.
  static stack_cache& instance() {
    static auto* c = new stack_cache;
    return *c;
  }

  ctx::stack_context take(std::size_t size) {
    {
      std::lock_guard lock(mutex_);  // also orders the stack's last use before its next one
      for (shelf& s : shelves_) {
        if (s.size != size || s.stacks.empty()) continue;
        const ctx::stack_context sc = s.stacks.back();
        s.stacks.pop_back();
#if defined(BATON_ASAN_FIBERS)
        // Frames of the previous fiber may have left poisoned redzones in the shadow memory.
        __asan_unpoison_memory_region(static_cast<char*>(sc.sp) - sc.size, sc.size);
#endif
        return sc;
      }
    }
    return ctx::protected_fixedsize_stack(size).allocate();
  }

  void give(std::size_t size, ctx::stack_context& sc) noexcept {
    {
      std::lock_guard lock(mutex_);
      shelf* found = nullptr;
      for (shelf& s : shelves_) {
        if (s.size == size) found = &s;
      }
      try {
        if (found == nullptr) found = &shelves_.emplace_back(shelf{size, {}});
        if (found->stacks.size() < depth) {
          found->stacks.push_back(sc);
          return;
        }
      } catch (...) {  // no memory for the bookkeeping: unmap instead
      }
    }
    ctx::protected_fixedsize_stack(size).deallocate(sc);
  }

 private:
  struct shelf {
    std::size_t size;
    std::vector<ctx::stack_context> stacks;
  };
  std::mutex mutex_;
  std::vector<shelf> shelves_;  // one per stack size in use: a handful at most
};

/// A guard-paged stack from the cache that tells fiber_core where it is (for the sanitizers).
struct recording_stack {
  std::size_t size;
  ctx::stack_context* out;
  ctx::stack_context allocate() {
    ctx::stack_context sc = stack_cache::instance().take(size);
    *out = sc;
    return sc;
  }
  void deallocate(ctx::stack_context& sc) noexcept { stack_cache::instance().give(size, sc); }
};

}  // namespace

fiber_core::fiber_core(std::size_t stack_size, std::function<void()> body)
    : impl_(std::make_unique<impl>()) {
#if defined(BATON_TSAN_FIBERS)
  impl_->tsan_fiber = __tsan_create_fiber(0);
#endif
  impl_->fiber = ctx::fiber(std::allocator_arg, recording_stack{stack_size, &impl_->stack},
                            [this, body = std::move(body)](ctx::fiber&& caller) mutable {
                              impl_->entered_fiber();
                              impl_->caller = std::move(caller);
                              try {
                                body();
                              } catch (const ctx::detail::forced_unwind&) {
                                throw;  // the fiber is being destroyed: let Boost unwind it
                              } catch (...) {
                                error = std::current_exception();
                              }
                              finished_ = true;
                              impl_->leaving_fiber(true);
                              return std::move(impl_->caller);
                            });
}

fiber_core::~fiber_core() {
#if defined(BATON_TSAN_FIBERS)
  __tsan_destroy_fiber(impl_->tsan_fiber);
#endif
}

void fiber_core::resume() {
  worker* w = current_worker;
  task_ctx = current_cell;
  impl_->previous = w->current_fiber;
  w->current_fiber = this;
#if defined(BATON_TSAN_FIBERS)
  impl_->tsan_caller = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(impl_->tsan_fiber, 0);
#endif
#if defined(BATON_ASAN_FIBERS)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, static_cast<char*>(impl_->stack.sp) - impl_->stack.size,
                                 impl_->stack.size);
#endif
  impl_->fiber = std::move(impl_->fiber).resume();
#if defined(BATON_ASAN_FIBERS)
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  // Back on the driver, maybe on the same thread only: read the worker again.
  current_worker->current_fiber = impl_->previous;
}

void fiber_core::suspend() {
  impl_->leaving_fiber(false);
  impl_->caller = std::move(impl_->caller).resume();
#if defined(BATON_ASAN_FIBERS)
  __sanitizer_finish_switch_fiber(impl_->fake_on_fiber, &impl_->caller_bottom, &impl_->caller_size);
#endif
}

fiber_core* current_fiber() noexcept {
  worker* w = current_worker;
  return w != nullptr ? w->current_fiber : nullptr;
}

}  // namespace baton::detail
