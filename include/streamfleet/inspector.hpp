#pragma once

/// @file
/// Views of queues for tools and dashboards, and the dead-letter operations
/// (list, requeue, purge).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
    std::string node;                ///< "host:port" of the Redis node serving the queue
    /// Entries ever delivered to the server group (XINFO GROUPS entries-read):
    /// its growth over time is the queue's throughput. -1 when Redis does not say.
    std::int64_t delivered = -1;
    /// Tasks that ended, by how, all servers' (P{Q}:finished: counted by the scripts that end
    /// them, since the key was created). Dead counts tasks dead-lettered, whether or not their
    /// letter is still kept (`dead` above).
    std::int64_t completed = 0, dead_total = 0, expired = 0, canceled = 0;
};

/// One entry of P{Q}:dead, as the server left it.
struct DeadLetter {
    std::string entry_id;       ///< id in P{Q}:dead; its milliseconds are when the task died
    std::string id;             ///< task id ("" when the entry was malformed beyond that)
    std::string data;           ///< payload
    std::string error;          ///< why it died (x_error): the last error, or the rule it broke
    std::uint32_t retries = 0;  ///< retries it had been through
    /// Its failed runs, oldest first ("UNIX_MS error"; the last 16).
    std::vector<std::string> history;
    std::int64_t died_at_ms = 0;
    /// Every field as stored, for what the typed members do not show.
    std::vector<std::pair<std::string, std::string>> fields;
};

/// A task waiting in P{Q}:delayed: scheduled, or between retries.
struct DelayedTask {
    std::string id;
    std::string data;
    std::int64_t due_ms = 0;    ///< when it will be promoted into the queue
    std::uint32_t retries = 0;  ///< > 0: it waits out a retry backoff
    std::string error;          ///< the last run's error, for a retry
};

/// A task in the queue not yet delivered to any server.
struct ReadyTask {
    std::string entry_id;  ///< its id in P{Q}, the order it runs in
    std::string id;        ///< task id
    std::string data;      ///< payload
    std::uint32_t retries = 0;
    std::int64_t enqueued_ms = 0;  ///< x_enqueued_ts (0 if the entry does not say)
};

/// A task delivered to a server and not yet finished (the group's PEL).
struct PendingTask {
    std::string entry_id;      ///< its id in P{Q}
    std::string id;            ///< task id ("" if the entry is gone or malformed)
    std::string server;        ///< the consumer (server id) holding it
    std::int64_t idle_ms = 0;  ///< since it was last delivered or its lease renewed
    std::uint64_t deliveries = 0;
};

class STREAMFLEET_API Inspector {
public:
    /// @param go_compatible look at queues under the Go streamfleet library's
    ///        key names, as ServerOptions::go_compatible servers use them.
    /// @throws InvalidArgument for a bad URL or prefix.
    explicit Inspector(std::string redis,
                       std::string prefix = "streamfleet:", bool go_compatible = false);
    ~Inspector();
    Inspector(const Inspector&) = delete;
    Inspector& operator=(const Inspector&) = delete;

    /// @brief The queues found in Redis: every queue stream (PREFIX{NAME}) there,
    /// by name, sorted. A SCAN: fine for tools and dashboards, not for a hot path.
    /// On a Redis Cluster it sees one node's queues only.
    /// @throws Unsupported with go_compatible (Go key names carry no marker to
    ///         find queues by), IoError/TimeoutError/AuthError (Redis).
    std::vector<std::string> queues();

    /// @brief Counts for one queue, read in one pipeline.
    /// @param live_window heartbeats older than this do not count as live.
    /// @throws InvalidArgument (queue name), IoError/TimeoutError/AuthError (Redis).
    QueueStats stats(std::string_view queue,
                     std::chrono::milliseconds live_window = std::chrono::seconds(30));

    /// @brief The gauges of `queues` in the Prometheus text format (0.0.4), by
    /// queue: streamfleet_queue_{ready,delayed,pending,dead},
    /// streamfleet_queue_oldest_pending_age_seconds (since the oldest delivered,
    /// unfinished entry was added; 0 when none), streamfleet_servers_live and
    /// streamfleet_clients_live (heartbeats within `live_window`). A few reads
    /// per queue: for a scrape, not a hot path.
    /// @throws as stats().
    std::string metrics_text(const std::vector<std::string>& queues,
                             std::chrono::milliseconds live_window = std::chrono::seconds(30));

    /// @brief Delayed tasks and retries, earliest due first: up to `limit` of them, skipping
    /// the first `offset` (for paging; the set is ordered by due time, which a promotion or a
    /// new task shifts under a reader, so a page may repeat or miss one at its edge).
    std::vector<DelayedTask> delayed(std::string_view queue, std::size_t limit = 100,
                                     std::size_t offset = 0);

    /// @brief Tasks not yet delivered, next first: up to `limit` of them with
    /// entry ids greater than `after` ("" = from the next one), for paging.
    std::vector<ReadyTask> ready(std::string_view queue, std::size_t limit = 100,
                                 std::string_view after = "");

    /// @brief Tasks delivered to servers and not finished, oldest first: up to `limit` of
    /// them with entry ids greater than `after` ("" = from the oldest), for paging.
    std::vector<PendingTask> pending(std::string_view queue, std::size_t limit = 100,
                                     std::string_view after = "");

    /// @brief Dead letters, oldest first: up to `limit` of them with entry ids
    /// greater than `after` ("" = from the start), for paging.
    std::vector<DeadLetter> dead_letters(std::string_view queue, std::size_t limit = 100,
                                         std::string_view after = "");

    /// @brief Moves the dead letter of task `task_id` back into the queue with
    /// its retries reset to 0 (its last error stays in x_error). Atomic: it is
    /// never in both places or in neither.
    /// @return false if no dead letter of that task exists.
    bool requeue_dead(std::string_view queue, std::string_view task_id);

    /// @brief Requeues every dead letter present when the call starts.
    /// @return how many were requeued.
    std::size_t requeue_all_dead(std::string_view queue);

    /// @brief Deletes every dead letter of the queue; returns how many there were.
    std::size_t purge_dead(std::string_view queue);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace v1
}  // namespace streamfleet
