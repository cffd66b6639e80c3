#pragma once

// DoneBuckets: where one server keeps the finished states of one queue's
// tasks (the format: core/done_format.hpp). A whole hash per finished task
// cost ~275 bytes of Redis memory and a PEXPIRE per task; a field in a small
// shared hash costs the id and ~15 bytes.
//
// Each retention gets its own family at a time, so a whole bucket expires
// at once: a family is written for at most width = retention/24 (at least a
// second), so its buckets expire at opened + width + retention, after every
// state in it is due to go (readers hide a state past its own finished +
// retention, so none is seen longer than promised). A family holds kFill
// states per bucket on average, few enough for Redis's compact encoding;
// filled early, the next has twice the buckets, and a family closed by time
// sizes the next by what it held, so a burst and a trickle both land near
// kFill per bucket.
//
// The writes ride along in the caller's blocks: ZADD of each family a block
// writes to into P{Q}:done (readers find states only through it, so it goes
// in every block: after Redis restarted empty, the next block's states are
// found), PEXPIREAT of a bucket the first time it is written, and again every
// kRearmMs, so a bucket whose first write was lost or refused (or that Redis
// lost) gets its expiry from a later one. Families past their expiry leave
// P{Q}:done by the janitor, which deletes their buckets by name first: a
// bucket Redis lost and a later write re-created without its expiry would
// otherwise be kept for ever.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "redis/block.hpp"

namespace streamfleet::detail {

class DoneBuckets {
public:
    static constexpr std::uint32_t kFill = 96;
    static constexpr std::uint32_t kMaxShards = 65536;
    static constexpr std::int64_t kRearmMs = 5'000;

    /// `done_key`: P{Q}:done; `tag`: unique to this writer (no '.').
    DoneBuckets(std::string done_key, std::string tag);

    /// A new block: each family it writes to is named in it again.
    void begin_block() noexcept {
        for (auto& [_, f] : by_retention_) f.announced = false;
    }
    /// Adds to `b` the HSET of a task's finished state `value` (finished at `now_ms`, kept
    /// `retention_ms` > 0) into its bucket, and what opening its family or its first write to
    /// that bucket needs.
    void add(redis::Block& b, std::string_view id, std::string_view value,
             std::int64_t retention_ms, std::int64_t now_ms);

private:
    struct Family {
        std::string member;
        std::uint32_t shards = 1;
        std::int64_t opened_ms = 0, closes_ms = 0, expires_ms = 0, armed_ms = 0;
        std::uint64_t count = 0;
        bool announced = false;      // its ZADD is in the current block
        std::vector<bool> expiring;  // per bucket: its PEXPIREAT was sent since armed_ms
    };
    Family& family(redis::Block& b, std::int64_t retention_ms, std::int64_t now_ms);
    void open(Family& f, std::uint32_t shards, std::int64_t retention_ms, std::int64_t now_ms);

    std::string done_, tag_;
    std::uint64_t seq_ = 0;
    std::map<std::int64_t, Family> by_retention_;
};

}  // namespace streamfleet::detail
