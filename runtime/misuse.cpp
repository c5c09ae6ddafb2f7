// SPDX-License-Identifier: BSL-1.0
// The messages of misuse errors that headers throw (kept out of line: cold, and strings).

#include <baton/errors.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include "debug.hpp"

#include <string>

namespace baton::detail {

void throw_bad_await(bool empty, const std::type_info& type) {
  const std::string what = "task<" + type_name(type) + ">";
  const std::string where =
      running_task != nullptr ? ", in task '" + task_name(running_task) + "'" : std::string();
  throw baton::runtime_error(empty ? "baton: co_await of an empty " + what +
                                         " (moved from or default-constructed)" + where
                                   : "baton: co_await of a " + what +
                                         " that was already awaited (a task runs once)" + where);
}

}  // namespace baton::detail
