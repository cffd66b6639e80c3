#pragma once

// Every Redis key and group name streamfleet uses, built in one place
// (DESIGN.md "Key layout"). All keys of queue Q carry the hash tag {Q}, so any
// multi-key step on one queue stays inside one Cluster slot.
//
// The Go-compatible style (ClientOptions/ServerOptions::go_compatible) uses the
// Go streamfleet library's names for what both sides share -- the queue stream
// PQ, the receivers heartbeat zset PQ:receivers, notification streams
// Preceiver:ID, all without braces -- so Go clients and workers meet ours on the
// same keys. Our own extra keys (delayed set, dead letters, registry, state
// records, ...) must still share the stream's Cluster slot, so they take the
// whole stream key as their hash tag, {PQ}:delayed: a key without a tag hashes
// its whole name, so {PQ} lands in the slot of PQ. A queue name that carries a
// hash tag of its own ({orders}, as Go users name queues on a Cluster) is kept
// as it is: PQ:delayed already shares that tag.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace streamfleet::detail {

inline constexpr std::string_view kDefaultPrefix = "streamfleet:";
inline constexpr std::string_view kServerGroup = "streamfleet-server";
inline constexpr std::string_view kClientGroup = "streamfleet-client";
/// Longest accepted queue name, in bytes.
inline constexpr std::size_t kMaxQueueName = 200;

/// Whose key names a client or server uses (see the top of this file).
enum class KeyStyle { native, go };
inline KeyStyle key_style(bool go_compatible) noexcept {
    return go_compatible ? KeyStyle::go : KeyStyle::native;
}

/// Facts of the Go streamfleet library that Go-compatible mode lives by.
/// Go servers renew a running task's idle time every 10 s and take over what
/// has been idle this long, so our servers never take a Go worker's task sooner.
inline constexpr std::int64_t kGoReclaimIdleMs = 60'000;
/// Go clients beat every 10 s and delete the notification streams of clients
/// silent this long.
inline constexpr std::int64_t kGoClientSilentMs = 600'000;

/// Checks a queue name: non-empty, at most kMaxQueueName bytes, no braces (they
/// would change the hash tag) and no control characters or spaces. In the Go
/// style braces are allowed as one hash tag ("{orders}", "jobs{eu}"), since Go
/// users name queues so on a Cluster; any other brace is refused.
/// errc::invalid_argument names the rule broken.
Status validate_queue_name(std::string_view queue, KeyStyle style = KeyStyle::native);

/// Checks a key prefix: at most 100 bytes, no braces.
Status validate_prefix(std::string_view prefix);

class QueueKeys {
public:
    QueueKeys(std::string_view prefix, std::string_view queue, KeyStyle style = KeyStyle::native);

    const std::string& queue() const noexcept { return queue_; }
    /// P{Q}: ready tasks (stream, group streamfleet-server). Go style: PQ.
    const std::string& stream() const noexcept { return stream_; }
    /// P{Q}:delayed: zset of delayed tasks and retries, score = due ms.
    const std::string& delayed() const noexcept { return delayed_; }
    /// P{Q}:dead: dead letters (stream).
    const std::string& dead() const noexcept { return dead_; }
    /// P{Q}:clients: zset of live clients, score = last heartbeat ms. Go style:
    /// PQ:receivers, the Go clients' own heartbeat set, so both kinds of client
    /// see (and sweep) each other.
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
    std::string unique(std::string_view key) const { return unique_prefix_ + std::string(key); }
    /// P{Q}:index: hash, task id -> entry id of each ready or running task with
    /// state tracking that has no state record (lib/scripts/enqueue.lua).
    const std::string& index() const noexcept { return index_; }
    /// P{Q}:done: zset of the buckets of finished states (core/done_buckets.hpp),
    /// member = family name, score = when the family's buckets expire (unix ms).
    const std::string& done() const noexcept { return done_; }
    /// P{Q}:finished: hash of how many tasks ended each way (completed, dead, expired,
    /// canceled), counted by the scripts that end them.
    const std::string& finished() const noexcept { return finished_; }
    /// P{Q}:task:ID: a task's state record (hash).
    std::string task(std::string_view id) const { return task_prefix_ + std::string(id); }
    /// P{Q}:sent:CLIENT: the numbers of a client's tasks without a state
    /// record that Redis has but the client has not yet seen confirmed (zset),
    /// so a resend after a lost reply adds nothing twice (lib/scripts/add.lua).
    std::string sent(std::string_view client_id) const {
        return sent_prefix_ + std::string(client_id);
    }

private:
    std::string queue_, stream_, delayed_, dead_, clients_, servers_, nudge_, cancels_,
        task_prefix_, unique_prefix_, sent_prefix_, done_, index_, finished_;
};

/// Preceiver:{CLIENT_ID}: a client's notification stream (group streamfleet-client).
/// Go style: Preceiver:CLIENT_ID.
std::string receiver_key(std::string_view prefix, std::string_view client_id,
                         KeyStyle style = KeyStyle::native);

/// PREFIXqueues: a set of the queue names clients and servers of this prefix opened (native
/// key names only), so listing the queues needs no SCAN of every node of a cluster.
std::string queue_registry_key(std::string_view prefix);

}  // namespace streamfleet::detail
