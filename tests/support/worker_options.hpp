#pragma once

// What tests that run workers share: the wall clock, and a Server's options
// for a test redis-server (a short read block, so shutdown is quick).

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "streamfleet/options.hpp"
#include "support/redis_server.hpp"

namespace streamfleet::test {

/// Unix ms now, the clock tasks' times (run_at, expiry) are in.
inline std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

inline ServerOptions server_opts(const RedisServer& rs, std::string id = "w1",
                                 unsigned concurrency = 4) {
    using namespace std::chrono_literals;
    return ServerOptions{
        .redis = rs.url(), .id = std::move(id), .concurrency = concurrency, .read_block = 500ms};
}

}  // namespace streamfleet::test
