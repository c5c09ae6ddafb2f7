// SPDX-License-Identifier: BSL-1.0
// The messages of misuse errors that headers throw (kept out of line: cold, and strings).

#include <baton/errors.hpp>
#include <baton/task.hpp>
#include <baton/task_handle.hpp>

#include "debug.hpp"

#include <string>

namespace baton::detail {

void throw_bad_await(const std::type_info& type) {
  // An await takes the frame out of the task, so "already awaited" and "moved from" leave the
  // same empty task behind: the message names every way to get one.
  const std::string where =
      running_task != nullptr ? ", in task '" + task_name(running_task) + "'" : std::string();
  throw baton::runtime_error("baton: co_await of an empty task<" + type_name(type) +
                             ">: it was already awaited (a task runs once), moved from or "
                             "default-constructed" +
                             where);
}

}  // namespace baton::detail
