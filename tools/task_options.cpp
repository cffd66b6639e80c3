// The per-task flags as streamfleet::TaskOptions, validated with the CLI's error texts.
#include "task_options.hpp"

#include <chrono>
#include <cstdint>

namespace cli {

streamfleet::TaskOptions task_options(const Flags& f) {
    streamfleet::TaskOptions opts;
    if (auto n = f.number("--max-retries")) {
        if (*n > 0xffffffffLL) throw UsageError("--max-retries is too large");
        opts.max_retries = static_cast<std::uint32_t>(*n);
    }
    if (auto n = f.number("--retry-delay-ms")) opts.retry_delay = std::chrono::milliseconds(*n);
    if (auto n = f.number("--expires-in-ms")) opts.expires_in = std::chrono::milliseconds(*n);
    // Every task of a --lines run gets the same options, so with --delay-ms
    // they all become due together, counted from each one's enqueue.
    if (f.get("--delay-ms") && f.get("--at")) {
        throw UsageError("--delay-ms and --at exclude each other");
    }
    if (auto n = f.number("--delay-ms")) opts.delay = std::chrono::milliseconds(*n);
    if (auto n = f.number("--at")) {
        if (*n == 0) throw UsageError("--at needs a unix time in ms after the epoch");
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
    if (auto n = f.number("--backoff-max-ms")) opts.backoff_max = std::chrono::milliseconds(*n);
    if (auto n = f.number("--run-timeout-ms")) opts.run_timeout = std::chrono::milliseconds(*n);
    if (f.get("--unique-key").has_value() != f.get("--unique-ttl-ms").has_value()) {
        throw UsageError("--unique-key and --unique-ttl-ms go together");
    }
    if (auto k = f.get("--unique-key")) {
        opts.unique_key = *k;
        opts.unique_ttl = std::chrono::milliseconds(*f.number("--unique-ttl-ms"));
        if (opts.unique_ttl.count() == 0) throw UsageError("--unique-ttl-ms must be positive");
    }
    return opts;
}

}  // namespace cli
