#pragma once

// FinalStates: the final states (completed, expired, canceled) of one loop
// turn's finished tasks of a queue, written to their state records as one
// redis::Block before the batch's XACK.
//
// Per task: HSET state and finished (and error, unless no run failed), then
// PEXPIRE by its retention; DEL when its retention is 0. Readers take
// `updated` as the latest of updated, created and finished, and retries are
// already in the record (move.lua counts them). entry/member/run_at stay:
// readers look at them only in the states that own them, and leaving them
// saves a command per task on the hot path. Every write is idempotent, so a
// block resent after a lost reply does no harm.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/keys.hpp"
#include "redis/block.hpp"

namespace streamfleet::detail {

class FinalStates {
public:
    explicit FinalStates(const QueueKeys& k) : keys_(&k) {}
    void add(std::string_view task_id, std::string_view state, std::string_view error,
             std::uint32_t retries, std::int64_t retention_ms);
    bool empty() const noexcept { return tasks_.empty(); }
    std::size_t size() const noexcept { return tasks_.size(); }
    /// The block, stamped `now_ms`; empty afterwards.
    redis::Block take(std::int64_t now_ms);

private:
    struct Task {
        std::string id, state, error;
        std::uint32_t retries = 0;
        std::int64_t retention_ms = 0;
    };
    const QueueKeys* keys_;
    std::vector<Task> tasks_;
};

}  // namespace streamfleet::detail
