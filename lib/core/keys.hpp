#pragma once

// Every Redis key and group name streamfleet uses, built in one place
// (DESIGN.md "Key layout"). All keys of queue Q carry the hash tag {Q}, so any
// multi-key step on one queue stays inside one Cluster slot.

#include <string>
#include <string_view>

#include "core/error.hpp"

namespace streamfleet::detail {

inline constexpr std::string_view kDefaultPrefix = "streamfleet:";
inline constexpr std::string_view kServerGroup = "streamfleet-server";
inline constexpr std::string_view kClientGroup = "streamfleet-client";
/// Longest accepted queue name, in bytes.
inline constexpr std::size_t kMaxQueueName = 200;

/// Checks a queue name: non-empty, at most kMaxQueueName bytes, no braces (they
/// would change the hash tag) and no control characters or spaces.
/// errc::invalid_argument names the rule broken.
Status validate_queue_name(std::string_view queue);

/// Checks a key prefix: at most 100 bytes, no braces.
Status validate_prefix(std::string_view prefix);

class QueueKeys {
public:
    QueueKeys(std::string_view prefix, std::string_view queue);

    const std::string& queue() const noexcept { return queue_; }
    /// P{Q}: ready tasks (stream, group streamfleet-server).
    const std::string& stream() const noexcept { return stream_; }
    /// P{Q}:delayed: zset of delayed tasks and retries, score = due ms.
    const std::string& delayed() const noexcept { return delayed_; }
    /// P{Q}:dead: dead letters (stream).
    const std::string& dead() const noexcept { return dead_; }
    /// P{Q}:clients: zset of live clients, score = last heartbeat ms.
    const std::string& clients() const noexcept { return clients_; }
    /// P{Q}:servers: zset of live servers, score = last heartbeat ms.
    const std::string& servers() const noexcept { return servers_; }
    /// P{Q}:nudge: stream (capped) of "something became due earlier" wake-ups
    /// for the servers' promoters, so none of them polls the delayed set.
    const std::string& nudge() const noexcept { return nudge_; }
    /// P{Q}:cancels: stream (capped) of cancel requests for running tasks,
    /// which servers XREAD beside the nudges.
    const std::string& cancels() const noexcept { return cancels_; }
    /// P{Q}:task: -- prefix of the per-task state hashes P{Q}:task:ID.
    const std::string& task_prefix() const noexcept { return task_prefix_; }
    /// P{Q}:unique:KEY: holds the id of the task that owns a uniqueness key
    /// until its window ends (string with a TTL).
    std::string unique(std::string_view key) const {
        return stream_ + ":unique:" + std::string(key);
    }
    /// P{Q}:task:ID: a task's state record (hash).
    std::string task(std::string_view id) const { return task_prefix_ + std::string(id); }

private:
    std::string queue_, stream_, delayed_, dead_, clients_, servers_, nudge_, cancels_,
        task_prefix_;
};

/// Preceiver:{CLIENT_ID}: a client's notification stream (group streamfleet-client).
std::string receiver_key(std::string_view prefix, std::string_view client_id);

}  // namespace streamfleet::detail
