#pragma once

// Backoff arithmetic, free of clocks and randomness sources so it is testable
// alone: callers pass the random draw in.

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace streamfleet::detail {

/// Delay before reconnect attempt `attempt` (0-based): the step doubles from
/// `lo` up to `hi`; the delay is the upper half of the step, randomised by
/// `random` ("equal jitter"), so it still backs off yet spreads out many
/// clients that lost the same server at the same instant.
inline std::chrono::milliseconds reconnect_delay(unsigned attempt, std::chrono::milliseconds lo,
                                                 std::chrono::milliseconds hi,
                                                 std::uint64_t random) {
    long long cap = std::max<long long>(hi.count(), 1);
    long long step = std::max<long long>(lo.count(), 1);
    for (unsigned i = 0; i < attempt && step < cap; ++i) step *= 2;
    step = std::min(step, cap);
    long long half = step / 2;
    return std::chrono::milliseconds(step - half +
                                     static_cast<long long>(random % static_cast<std::uint64_t>(half + 1)));
}

}  // namespace streamfleet::detail
