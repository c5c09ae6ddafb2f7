// SPDX-License-Identifier: BSL-1.0
// The registry of live context vars (private): names for error messages, printers for dumps.
#pragma once

#include <baton/detail/context_map.hpp>

#include <string>
#include <utility>
#include <vector>

namespace baton::detail {

/// The name of the var with this key, or "<destroyed var>" once it is gone.
std::string var_name(var_key key);

/// Every value in the map rooted at `root` whose var is still alive, as (var name, printed
/// value) pairs; the values of destroyed vars are skipped (nothing can reach them any more).
std::vector<std::pair<std::string, std::string>> describe_context(const map_node* root);

}  // namespace baton::detail
