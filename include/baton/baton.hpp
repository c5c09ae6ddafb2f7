// SPDX-License-Identifier: BSL-1.0
// The umbrella header: everything baton offers.
#pragma once

#include <baton/context.hpp>
#include <baton/context_var.hpp>
#include <baton/errors.hpp>
#include <baton/token.hpp>
