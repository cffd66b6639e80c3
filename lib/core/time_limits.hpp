#pragma once

// The latest instant a task may name, and the checks that keep time arithmetic in range.
//
// Task times are unix ms in an int64. Unchecked, a huge duration added to "now" overflowed into
// the past (a delay of INT64_MAX ran at once, an expiry of INT64_MAX was a negative expires_ts the
// decoder refused), and system_clock (nanoseconds in libstdc++) cannot hold instants past 2262.
// Every instant and duration a task carries is therefore kept at or below the end of year 9999,
// far inside every representation involved.

#include <cstdint>

namespace streamfleet::detail {

/// 9999-12-31T23:59:59.999Z in unix ms.
inline constexpr std::int64_t kMaxTimeMs = 253'402'300'799'999;

/// `now + d`, or -1 when that passes kMaxTimeMs (`d` >= 0, `now` in 0..kMaxTimeMs).
inline constexpr std::int64_t add_time(std::int64_t now, std::int64_t d) noexcept {
    return d > kMaxTimeMs - now ? -1 : now + d;
}

}  // namespace streamfleet::detail
