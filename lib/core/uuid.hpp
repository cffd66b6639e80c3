#pragma once

// UUIDv7 task and client ids (RFC 9562): 48 bits of unix milliseconds, then a
// 12-bit counter in rand_a (RFC 9562 §6.2 method 1) seeded randomly each
// millisecond, then 62 random bits. Ids from one generator are strictly
// increasing as text, which keeps them time-ordered in logs and in Redis.

#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <string_view>

#include "core/clock.hpp"

namespace streamfleet::detail {

class UuidV7Generator {
public:
    explicit UuidV7Generator(const Clock& clock = SystemClock::instance());

    /// A new id, "xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx" in lowercase hex. Thread-safe.
    std::string next();

private:
    const Clock& clock_;
    std::mutex mutex_;
    std::mt19937_64 rng_;
    std::int64_t last_ms_ = -1;
    std::uint32_t counter_ = 0;  // 12 bits used
};

/// A process-wide generator on the system clock.
std::string new_uuid_v7();

/// True for canonical lowercase or uppercase UUID text of version 7.
bool is_uuid_v7(std::string_view s) noexcept;

/// The unix-ms timestamp carried by a UUIDv7 (0 when `s` is not one).
std::int64_t uuid_v7_ms(std::string_view s) noexcept;

}  // namespace streamfleet::detail
