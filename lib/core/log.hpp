#pragma once

// The library's logger. Quiet by default (warnings and errors only) so that
// embedding apps and the test suite are not flooded; STREAMFLEET_LOG=debug|info|...
// raises it, and set_logger() lets an app route everything to its own sinks.

#include <spdlog/spdlog.h>

#include <memory>

namespace streamfleet::detail {

/// The current logger; never null.
spdlog::logger& log();

/// Replaces the logger (nullptr restores the default). Thread-safe.
void set_logger(std::shared_ptr<spdlog::logger> logger);

}  // namespace streamfleet::detail
