#pragma once

// Backoff arithmetic, free of clocks and randomness sources so it is testable
// alone: callers pass the random draw in.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>

#include "core/time_limits.hpp"
#include "core/wire.hpp"

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
    return std::chrono::milliseconds(
        step - half + static_cast<long long>(random % static_cast<std::uint64_t>(half + 1)));
}

/// Default cap of a task's retry delay under a backoff strategy: one hour.
inline constexpr std::int64_t kDefaultBackoffMaxMs = 3'600'000;

/// The retry policy of a task that sets neither a delay nor a strategy (retry_delay 0, no
/// x_backoff: the defaults): the step doubles from 1 s to 1 min, the delay drawn from its upper
/// half like reconnect_delay. Without it a task that always fails would be run again at once,
/// forever (max_retries 0), as fast as a server can take it.
inline constexpr std::int64_t kDefaultRetryBaseMs = 1'000;
inline constexpr std::int64_t kDefaultRetryMaxMs = 60'000;

/// Delay in ms before a task's next run after `retries` failed retries so far
/// (0 before the first retry): no strategy and `base` <= 0 → the default
/// policy above; no strategy or `fixed` → `base`; `linear` → base × (retries +
/// 1); `exponential` → uniform in [0, base × 2^retries] drawn from `random`
/// ("full jitter"). With a strategy the result never exceeds `cap` (0 =
/// kDefaultBackoffMaxMs). Saturates instead of overflowing. An explicit
/// `fixed` with base 0 asks for immediate retries.
inline std::int64_t retry_delay_ms(std::optional<BackoffKind> kind, std::int64_t base,
                                   std::int64_t cap, std::uint32_t retries, std::uint64_t random) {
    // Never past kMaxTimeMs, so the caller's now + delay cannot overflow, whatever another
    // implementation wrote into the task.
    base = std::clamp<std::int64_t>(base, 0, kMaxTimeMs);
    if (!kind && base == 0) {
        return reconnect_delay(std::min<std::uint32_t>(retries, 63),
                               std::chrono::milliseconds(kDefaultRetryBaseMs),
                               std::chrono::milliseconds(kDefaultRetryMaxMs), random)
            .count();
    }
    if (!kind) return base;
    if (cap <= 0) cap = kDefaultBackoffMaxMs;
    cap = std::min(cap, kMaxTimeMs);
    switch (*kind) {
        case BackoffKind::fixed:
            return std::min(base, cap);
        case BackoffKind::linear: {
            auto steps = static_cast<std::int64_t>(retries) + 1;
            if (base != 0 && steps > cap / base) return cap;
            return std::min(base * steps, cap);
        }
        case BackoffKind::exponential: {
            std::int64_t hi = base;
            for (std::uint32_t i = 0; i < retries && hi < cap; ++i) hi *= 2;
            hi = std::min(hi, cap);
            return static_cast<std::int64_t>(random % (static_cast<std::uint64_t>(hi) + 1));
        }
    }
    return base;
}

}  // namespace streamfleet::detail
