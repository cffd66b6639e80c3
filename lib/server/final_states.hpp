#pragma once

// FinalStates: the final states (completed, expired, canceled) of a queue's
// finished tasks, written once per loop turn as one redis::Block before the
// batch's XACK.
//
// The tasks leave P{Q}:index (one HDEL) and lose their state records (one
// DEL: a task that was delayed, retried or asked to stop has one), and
// (unless its retention is 0) each task's final state becomes a field of a
// shared bucket (server/done_buckets.hpp), where get(), cancel() and a
// resent enqueue find it. All in one block, so a reader sees the task live
// or finished, never neither. Every write is idempotent, so a block resent after a lost reply
// does no harm. The error of an earlier failed run is not kept: the final
// run's outcome replaces it.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/keys.hpp"
#include "redis/block.hpp"
#include "server/done_buckets.hpp"

namespace streamfleet::detail {

class FinalStates {
public:
    /// `tag`: unique to this server (no '.'), naming its bucket families.
    FinalStates(const QueueKeys& k, std::string tag) : keys_(&k), buckets_(k.done(), std::move(tag)) {}
    void add(std::string_view task_id, std::string_view state, std::int64_t created_ms,
             std::uint32_t retries, std::int64_t retention_ms);
    bool empty() const noexcept { return tasks_.empty(); }
    std::size_t size() const noexcept { return tasks_.size(); }
    /// The block, stamped `now_ms`; empty afterwards.
    redis::Block take(std::int64_t now_ms);

private:
    struct Task {
        std::string id, state;
        std::int64_t created_ms = 0;
        std::uint32_t retries = 0;
        std::int64_t retention_ms = 0;
    };
    const QueueKeys* keys_;
    DoneBuckets buckets_;
    std::vector<Task> tasks_;
};

}  // namespace streamfleet::detail
