// SPDX-License-Identifier: BSL-1.0
// The install test's consumer: built against an installed baton through pkg-config and CMake.
// A task sets a context var and awaits a coroutine child and a fiber child (the fiber makes the
// link need Boost.Context); both must see the parent's value. Exit 0 when they do.
#include <baton/baton.hpp>

#include <chrono>
#include <cstdio>
#include <string>

namespace {

baton::context_var<std::string> user("user");

baton::task<std::string> child() {
  co_await baton::sleep(std::chrono::milliseconds(1));
  co_return user.get("none");
}

baton::task<int> parent() {
  (void)user.set("ada");
  auto coroutine = baton::spawn(child());
  auto fiber = baton::spawn_fiber([] {
    baton::await(baton::sleep(std::chrono::milliseconds(1)));
    return user.get("none");
  });
  const std::string from_coroutine = co_await coroutine;
  const std::string from_fiber = co_await fiber;
  if (from_coroutine != "ada" || from_fiber != "ada" || user.get() != "ada") {
    std::printf("consumer: children saw user=%s (task) and %s (fiber), expected ada\n",
                from_coroutine.c_str(), from_fiber.c_str());
    co_return 1;
  }
  co_return 0;
}

}  // namespace

int main() {
  const int status = baton::run(parent());
  if (status == 0) std::puts("consumer: ok");
  return status;
}
