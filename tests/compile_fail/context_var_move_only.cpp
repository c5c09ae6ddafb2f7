// SPDX-License-Identifier: BSL-1.0
// A context var of a move-only type: get() returns a copy, so T must be copyable.
// expect: for a move-only value use context_var<std::shared_ptr<const T>>
#include <baton/baton.hpp>

#include <memory>

baton::context_var<std::unique_ptr<int>> session("session");
