#pragma once

// Clock: wall-clock milliseconds, injectable so expiry, leases and backoff can be
// tested without sleeping (asynq's timeutil.Clock idea).

#include <atomic>
#include <chrono>
#include <cstdint>

namespace streamfleet::detail {

class Clock {
public:
    virtual ~Clock() = default;
    /// Unix time in milliseconds.
    virtual std::int64_t now_ms() const = 0;
};

class SystemClock final : public Clock {
public:
    std::int64_t now_ms() const override {
        using namespace std::chrono;
        return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
    }
    static const SystemClock& instance() {
        static const SystemClock clock;
        return clock;
    }
};

/// A clock that moves only when told to. Thread-safe.
class ManualClock final : public Clock {
public:
    explicit ManualClock(std::int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
    std::int64_t now_ms() const override { return now_.load(); }
    void set(std::int64_t ms) { now_.store(ms); }
    void advance(std::int64_t ms) { now_.fetch_add(ms); }

private:
    std::atomic<std::int64_t> now_;
};

}  // namespace streamfleet::detail
