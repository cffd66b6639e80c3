#pragma once

/// @file
/// Read-only views of queues for tools and dashboards.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "streamfleet/export.hpp"

namespace streamfleet {
inline namespace v1 {

struct QueueStats {
    std::string queue;
    std::int64_t stream_length = 0;  ///< entries in P{Q} (ready + delivered-but-unacked)
    std::int64_t pending = 0;        ///< entries delivered to a server and not yet acked (PEL)
    std::int64_t consumers = 0;      ///< consumers in the server group
    std::int64_t delayed = 0;        ///< tasks waiting in P{Q}:delayed
    std::int64_t dead = 0;           ///< dead letters in P{Q}:dead
    std::int64_t clients = 0;        ///< clients with a heartbeat in the last `live_window`
    std::int64_t servers = 0;        ///< servers with a heartbeat in the last `live_window`
};

class STREAMFLEET_API Inspector {
public:
    /// @throws InvalidArgument for a bad URL or prefix.
    explicit Inspector(std::string redis, std::string prefix = "streamfleet:");
    ~Inspector();
    Inspector(const Inspector&) = delete;
    Inspector& operator=(const Inspector&) = delete;

    /// @brief Counts for one queue, read in one pipeline.
    /// @param live_window heartbeats older than this do not count as live.
    /// @throws InvalidArgument (queue name), IoError/TimeoutError/AuthError (Redis).
    QueueStats stats(std::string_view queue,
                     std::chrono::milliseconds live_window = std::chrono::seconds(30));

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace v1
}  // namespace streamfleet
