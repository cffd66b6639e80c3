// The per-task flags (--max-retries ... --unique-ttl-ms) as streamfleet::TaskOptions.
#pragma once

#include <streamfleet/options.hpp>

#include "flags.hpp"

namespace cli {

// Throws UsageError on a bad or contradictory value; the checks run in a fixed
// order, so the same bad input always names the same flag.
streamfleet::TaskOptions task_options(const Flags& f);

}  // namespace cli
