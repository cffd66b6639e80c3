// The per-task flags as streamfleet::TaskOptions, validated with the CLI's error texts.
#include "task_options.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace cli {

namespace {

// 9999-12-31T23:59:59.999Z in unix ms: the latest time a task may name (the library refuses later
// ones too; checked here first so the message names the flag and the exit code is a usage error's).
// --at past 2262 would not even fit system_clock, which counts nanoseconds.
constexpr long long kMaxTimeMs = 253'402'300'799'999;

long long now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// A duration flag in ms: counted from now, it must end by kMaxTimeMs.
std::optional<long long> duration_ms(const Flags& f, const std::string& name) {
    auto n = f.number(name);
    if (n && *n > kMaxTimeMs - now_ms()) {
        throw UsageError(name + " is too large: " + std::to_string(*n) +
                         " ms from now is past 9999-12-31, the latest time a task may name");
    }
    return n;
}

}  // namespace

streamfleet::TaskOptions task_options(const Flags& f) {
    streamfleet::TaskOptions opts;
    if (auto n = f.number("--max-retries")) {
        if (*n > 0xffffffffLL) throw UsageError("--max-retries is too large");
        opts.max_retries = static_cast<std::uint32_t>(*n);
    }
    if (auto n = duration_ms(f, "--retry-delay-ms")) opts.retry_delay = std::chrono::milliseconds(*n);
    if (auto n = duration_ms(f, "--expires-in-ms")) opts.expires_in = std::chrono::milliseconds(*n);
    // Every task of a --lines run gets the same options, so with --delay-ms
    // they all become due together, counted from each one's enqueue.
    if (f.get("--delay-ms") && f.get("--at")) {
        throw UsageError("--delay-ms and --at exclude each other");
    }
    if (auto n = duration_ms(f, "--delay-ms")) opts.delay = std::chrono::milliseconds(*n);
    if (auto n = f.number("--at")) {
        if (*n == 0) throw UsageError("--at needs a unix time in ms after the epoch");
        // system_clock counts nanoseconds here: past ~2262 a time_point wraps around.
        constexpr long long kMaxAt = std::min<long long>(
            kMaxTimeMs, std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::time_point::max().time_since_epoch())
                            .count());
        if (*n > kMaxAt) {
            throw UsageError("--at " + std::to_string(*n) + " is later than " +
                             std::to_string(kMaxAt) +
                             " ms, the latest instant a task's run time can hold");
        }
        opts.run_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(*n));
    }
    if (auto b = f.get("--backoff")) {
        if (*b == "fixed") {
            opts.backoff = streamfleet::Backoff::fixed;
        } else if (*b == "linear") {
            opts.backoff = streamfleet::Backoff::linear;
        } else if (*b == "exponential") {
            opts.backoff = streamfleet::Backoff::exponential;
        } else {
            throw UsageError("--backoff must be fixed, linear or exponential, got '" + *b + "'");
        }
    }
    if (auto n = duration_ms(f, "--backoff-max-ms")) opts.backoff_max = std::chrono::milliseconds(*n);
    if (auto n = duration_ms(f, "--run-timeout-ms")) opts.run_timeout = std::chrono::milliseconds(*n);
    if (f.get("--unique-key").has_value() != f.get("--unique-ttl-ms").has_value()) {
        throw UsageError("--unique-key and --unique-ttl-ms go together");
    }
    if (auto k = f.get("--unique-key")) {
        opts.unique_key = *k;
        opts.unique_ttl = std::chrono::milliseconds(*duration_ms(f, "--unique-ttl-ms"));
        if (opts.unique_ttl.count() == 0) throw UsageError("--unique-ttl-ms must be positive");
    }
    return opts;
}

}  // namespace cli
