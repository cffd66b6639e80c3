#pragma once

// The library's logger. Quiet by default (warnings and errors only) so that
// embedding apps and the test suite are not flooded; STREAMFLEET_LOG=debug|info|...
// raises it, and set_logger() lets an app route everything to its own sinks.
//
// Background components that retry a refused or failing step log through
// log_limited(): one line per key per period, the next line that passes
// saying how many were held back. A step refused thousands of times a second
// then costs a line every few seconds, not a flood.

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

namespace streamfleet::detail {

/// The current logger; never null.
spdlog::logger& log();

/// Replaces the logger (nullptr restores the default). Thread-safe.
void set_logger(std::shared_ptr<spdlog::logger> logger);

/// Default period of log_limited(): one line per key per 5 s.
inline constexpr std::chrono::milliseconds kLogPeriod{5000};

/// Whether a line with `key` may be logged now (at most once per `period`);
/// when it may, `suppressed` is set to the lines held back since the last
/// one. Thread-safe. Keys name a source and a message ("server w1: read"),
/// not a changing value, or nothing is held back.
bool log_gate(std::string_view key, std::chrono::milliseconds period, std::uint64_t& suppressed);

/// Logs like log().log(level, ...) but at most once per `period` per `key`.
template <class... Args>
void log_limited(spdlog::level::level_enum level, std::string_view key,
                 std::chrono::milliseconds period, spdlog::format_string_t<Args...> fmt,
                 Args&&... args) {
    auto& l = log();
    if (!l.should_log(level)) return;
    std::uint64_t suppressed = 0;
    if (!log_gate(key, period, suppressed)) return;
    auto text = fmt::format(fmt, std::forward<Args>(args)...);
    if (suppressed == 0) {
        l.log(level, "{}", text);
    } else {
        l.log(level, "{} ({} more like it held back)", text, suppressed);
    }
}

template <class... Args>
void log_limited(spdlog::level::level_enum level, std::string_view key,
                 spdlog::format_string_t<Args...> fmt, Args&&... args) {
    log_limited(level, key, kLogPeriod, fmt, std::forward<Args>(args)...);
}

}  // namespace streamfleet::detail
