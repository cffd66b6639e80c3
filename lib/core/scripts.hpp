#pragma once

// Lua scripts shared by clients and servers. Each keeps every key of one queue
// (one hash tag), so it runs in one Cluster slot.

#include <string_view>

namespace streamfleet::detail {

// Schedules a task: ZADD into P{Q}:delayed, and when it became the earliest
// there, wakes the servers' promoters through P{Q}:nudge (they XREAD it), so a
// promoter sleeping until a later due time re-arms for this one. Idempotent: a
// resend after a lost reply re-adds the same member with the same score.
// KEYS[1] P{Q}:delayed   KEYS[2] P{Q}:nudge
// ARGV[1] due unix ms    ARGV[2] member (msgpack field list)
// Returns 1 when a nudge was sent, else 0.
inline constexpr std::string_view kScheduleScript = R"lua(
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if head[1] ~= ARGV[2] then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100, '*', 'due', ARGV[1])
return 1
)lua";

}  // namespace streamfleet::detail
