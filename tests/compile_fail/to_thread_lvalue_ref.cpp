// SPDX-License-Identifier: BSL-1.0
// to_thread(f, s) where f takes std::string&: the job gets its own copy of s, which cannot
// bind to a non-const lvalue reference.
// expect: baton: to_thread/run_in_executor: f cannot take these arguments
#include <baton/baton.hpp>

#include <string>

void append(std::string& s) { s += "!"; }

baton::task<> caller() {
  std::string s = "hi";
  co_await baton::to_thread(append, s);
}
