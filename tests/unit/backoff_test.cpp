#include <doctest/doctest.h>

#include "core/backoff.hpp"

using namespace std::chrono_literals;
using streamfleet::detail::reconnect_delay;

TEST_CASE("reconnect delay doubles, stays in the upper half of its step, and caps") {
    // random = 0 gives the smallest delay of a step, a huge random the largest.
    CHECK(reconnect_delay(0, 100ms, 5000ms, 0) == 50ms);
    CHECK(reconnect_delay(0, 100ms, 5000ms, 50) == 100ms);
    CHECK(reconnect_delay(0, 100ms, 5000ms, 51) == 50ms);  // wraps within the half
    CHECK(reconnect_delay(1, 100ms, 5000ms, 0) == 100ms);
    CHECK(reconnect_delay(3, 100ms, 5000ms, 0) == 400ms);
    CHECK(reconnect_delay(6, 100ms, 5000ms, 0) == 2500ms);
    CHECK(reconnect_delay(60, 100ms, 5000ms, 0) == 2500ms);  // no overflow, capped
    for (std::uint64_t r = 0; r < 2000; r += 7) {
        auto d = reconnect_delay(10, 100ms, 5000ms, r);
        CHECK(d >= 2500ms);
        CHECK(d <= 5000ms);
    }
    CHECK(reconnect_delay(0, 0ms, 0ms, 12345) >= 0ms);  // degenerate options do not divide by zero
}
