#include "core/backoff.hpp"

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>
#include <thread>

#include "core/log.hpp"
#include "core/random.hpp"
#include "core/retry_backoff.hpp"

using namespace std::chrono_literals;
using streamfleet::detail::reconnect_delay;
using namespace streamfleet::detail;

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

TEST_CASE("retry delay: with neither a delay nor a strategy, the default backoff") {
    // Upper half of a step that doubles from 1 s to 60 s, whatever the draw.
    for (std::uint64_t r : {std::uint64_t{0}, std::uint64_t{499}, std::uint64_t{500},
                            std::uint64_t{123'456'789}, ~std::uint64_t{0}}) {
        CAPTURE(r);
        std::int64_t step = kDefaultRetryBaseMs;
        for (std::uint32_t n = 0; n < 12; ++n) {
            CAPTURE(n);
            auto d = retry_delay_ms(std::nullopt, 0, 0, n, r);
            CHECK(d >= step / 2);
            CHECK(d <= step);
            CHECK(d == retry_delay_ms(std::nullopt, -3, 0, n, r));  // a negative base is 0
            step = std::min(step * 2, kDefaultRetryMaxMs);
        }
        auto last = retry_delay_ms(std::nullopt, 0, 0, 4'000'000'000u, r);
        CHECK(last >= kDefaultRetryMaxMs / 2);
        CHECK(last <= kDefaultRetryMaxMs);
    }
}

TEST_CASE("retry delay: fixed, linear and exponential schedules, capped, never overflowing") {
    using K = BackoffKind;
    // No strategy: the v1 fixed retry_delay, uncapped.
    CHECK(retry_delay_ms(std::nullopt, 5000, 0, 7, 0) == 5000);
    CHECK(retry_delay_ms(K::fixed, 0, 0, 9, 12345) == 0);  // immediate retries, asked for
    CHECK(retry_delay_ms(K::fixed, 200, 0, 9, 12345) == 200);
    CHECK(retry_delay_ms(K::fixed, 200, 150, 0, 0) == 150);
    for (std::uint32_t n = 0; n < 5; ++n)
        CHECK(retry_delay_ms(K::linear, 100, 0, n, 0) == 100 * (n + 1));
    CHECK(retry_delay_ms(K::linear, 100, 250, 4, 0) == 250);
    CHECK(retry_delay_ms(K::linear, std::int64_t{1} << 62, 0, 1000, 0) == kDefaultBackoffMaxMs);
    // Exponential with full jitter: uniform in [0, base × 2^n], capped.
    CHECK(retry_delay_ms(K::exponential, 100, 0, 0, 100) == 100);
    CHECK(retry_delay_ms(K::exponential, 100, 0, 0, 101) == 0);
    CHECK(retry_delay_ms(K::exponential, 100, 0, 3, 800) == 800);
    CHECK(retry_delay_ms(K::exponential, 100, 0, 3, 801) == 0);
    for (std::uint64_t r = 0; r < 5000; r += 37) {
        CHECK(retry_delay_ms(K::exponential, 100, 1000, 30, r * 1'000'003) <= 1000);
    }
    CHECK(retry_delay_ms(K::exponential, 1000, 0, 4'000'000'000u, ~std::uint64_t{0}) <=
          kDefaultBackoffMaxMs);
}

TEST_CASE("retry backoff: each failure in a row waits longer, up to the cap; a success starts over") {
    FixedRandom low(0);
    RetryBackoff b(low, 100ms, 5000ms);
    CHECK(b.failed() == 50ms);
    CHECK(b.failed() == 100ms);
    CHECK(b.failed() == 200ms);
    for (int i = 0; i < 100; ++i) (void)b.failed();
    CHECK(b.failed() == 2500ms);  // the upper half of the capped step, never more
    CHECK(b.failures() > 60);
    b.succeeded();
    CHECK(b.failures() == 0);
    CHECK(b.failed() == 50ms);
    FixedRandom high(~0ull >> 1);
    RetryBackoff h(high, 100ms, 5000ms);
    for (int i = 0; i < 100; ++i) CHECK(h.failed() <= 5000ms);
}

TEST_CASE("log_limited: one line per key per period, the next one counting those held back") {
    std::ostringstream out;
    auto logger = std::make_shared<spdlog::logger>(
        "t", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
    logger->set_pattern("%v");
    set_logger(logger);
    for (int i = 0; i < 1000; ++i) {
        log_limited(spdlog::level::warn, "test key a", 200ms, "a failed: {}", i);
        log_limited(spdlog::level::warn, "test key b", 200ms, "b failed");
    }
    CHECK(out.str() == "a failed: 0\nb failed\n");
    out.str("");
    std::this_thread::sleep_for(250ms);
    log_limited(spdlog::level::warn, "test key a", 200ms, "a failed: {}", 1000);
    CHECK(out.str() == "a failed: 1000 (999 more like it held back)\n");
    // Below the logger's level: neither logged nor counted.
    out.str("");
    log_limited(spdlog::level::debug, "test key c", 200ms, "c");
    CHECK(out.str().empty());
    set_logger(nullptr);
}
