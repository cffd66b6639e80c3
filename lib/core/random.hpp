#pragma once

// Random: the one source of randomness for jitter (reclaim scans, retry
// backoff, reconnects), injectable like the Clock so a test can fix the draws
// and tick a component deterministically.

#include <cstdint>
#include <mutex>
#include <random>

namespace streamfleet::detail {

class Random {
public:
    virtual ~Random() = default;
    /// A uniformly distributed 64-bit draw.
    virtual std::uint64_t next() = 0;
};

/// A Mersenne Twister seeded from std::random_device, or from `seed` for
/// reproducible runs. Thread-safe (handler threads and the loop may share one).
class SeededRandom final : public Random {
public:
    SeededRandom() : rng_(std::random_device{}()) {}
    explicit SeededRandom(std::uint64_t seed) : rng_(seed) {}
    std::uint64_t next() override {
        std::lock_guard lock(mutex_);
        return rng_();
    }

private:
    std::mutex mutex_;
    std::mt19937_64 rng_;
};

/// Always the same draw (settable): for tests that need a known jitter.
class FixedRandom final : public Random {
public:
    explicit FixedRandom(std::uint64_t value) : value_(value) {}
    std::uint64_t next() override { return value_; }
    void set(std::uint64_t value) { value_ = value; }

private:
    std::uint64_t value_;
};

}  // namespace streamfleet::detail
