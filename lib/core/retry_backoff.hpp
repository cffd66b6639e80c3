#pragma once

// RetryBackoff: how long a background step that keeps failing waits before
// its next try. A refused command (NOPERM, a missing group that cannot be
// created) fails the same way every time; retried at once it becomes a busy
// loop of thousands of commands a second. Each failure in a row doubles the
// wait from `lo` up to `hi`, with equal jitter (reconnect_delay), so peers
// refused at the same instant spread out; a success starts over at `lo`.

#include <chrono>
#include <cstdint>

#include "core/backoff.hpp"
#include "core/random.hpp"

namespace streamfleet::detail {

class RetryBackoff {
public:
    static constexpr std::chrono::milliseconds kDefaultLo{100};
    static constexpr std::chrono::milliseconds kDefaultHi{5000};

    explicit RetryBackoff(Random& random, std::chrono::milliseconds lo = kDefaultLo,
                          std::chrono::milliseconds hi = kDefaultHi)
        : random_(random), lo_(lo), hi_(hi) {}

    /// The wait before the next try, after one more failure.
    std::chrono::milliseconds failed() {
        auto d = reconnect_delay(failures_, lo_, hi_, random_.next());
        if (failures_ < 64) ++failures_;
        return d;
    }
    /// The step succeeded: the next failure waits the shortest time again.
    void succeeded() noexcept { failures_ = 0; }
    /// Failures in a row so far.
    unsigned failures() const noexcept { return failures_; }

private:
    Random& random_;
    std::chrono::milliseconds lo_, hi_;
    unsigned failures_ = 0;
};

}  // namespace streamfleet::detail
