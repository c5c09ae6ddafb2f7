// SPDX-License-Identifier: BSL-1.0
// A context var of a reference type: a context holds values.
// expect: baton: context_var<T> holds values, not references: use context_var<T*>
#include <baton/baton.hpp>

#include <string>

baton::context_var<std::string&> user("user");
