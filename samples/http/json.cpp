// SPDX-License-Identifier: BSL-1.0
// Boost.JSON, header-only: its compiled part, once for the whole sample.
#include <boost/json/src.hpp>
