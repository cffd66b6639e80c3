#pragma once

// Lua scripts shared by clients and servers. Each keeps every key of one queue
// (one hash tag), so it runs in one Cluster slot.

#include <cstdint>
#include <string_view>

namespace streamfleet::detail {

/// Finished states are kept this long unless a task says otherwise.
inline constexpr std::int64_t kDefaultRetentionMs = 24LL * 3600 * 1000;

// State records (P{Q}:task:ID, a hash) hold: state, retries, error, created,
// updated, finished, run_at, retention (ms to keep it once finished), notify
// (the tracking client's id, "" for fire-and-forget), entry (its id in P{Q}
// while ready or running) and member (its P{Q}:delayed member while delayed).
// "active" is not stored: it is "ready" with the entry in the group's PEL,
// which costs the fast path no write when a server picks a task up.

// Enqueues tasks with state records: each XADD and its record in one step, so
// the record always knows the entry (cancel removes a not-yet-delivered task
// by it). A client sends one call for all such tasks of one loop turn: a Lua
// call costs Redis more than the two commands inside it, so it is paid once
// per batch, not per task. The records share the stream's hash tag.
// KEYS[1] P{Q}
// ARGV, per task: record key, created ms, notify client id, retention ms, n,
//                 then the entry's n field/value strings
// Returns the entry ids, in order.
inline constexpr std::string_view kEnqueueScript = R"lua(
local ids = {}
local i = 1
while i <= #ARGV do
  local n = tonumber(ARGV[i + 4])
  local eid = redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 5, i + 4 + n))
  redis.call('HSET', ARGV[i], 'state', 'ready', 'entry', eid, 'created', ARGV[i + 1],
             'updated', ARGV[i + 1], 'notify', ARGV[i + 2], 'retention', ARGV[i + 3], 'retries', '0')
  ids[#ids + 1] = eid
  i = i + 5 + n
end
return ids
)lua";

// Schedules a task: ZADD into P{Q}:delayed, and when it became the earliest
// there, wakes the servers' promoters through P{Q}:nudge (they XREAD it), so a
// promoter sleeping until a later due time re-arms for this one. Idempotent: a
// resend after a lost reply re-adds the same member with the same score.
// KEYS[1] P{Q}:delayed   KEYS[2] P{Q}:nudge   [KEYS[3] P{Q}:task:ID, tracked tasks]
// ARGV[1] due unix ms    ARGV[2] member (msgpack field list)
// [ARGV[3] now ms   ARGV[4] notify client id   ARGV[5] retention ms]
// Returns 1 when a nudge was sent, else 0.
inline constexpr std::string_view kScheduleScript = R"lua(
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
if KEYS[3] then
  redis.call('HSET', KEYS[3], 'state', 'delayed', 'member', ARGV[2], 'run_at', ARGV[1],
             'created', ARGV[3], 'updated', ARGV[3], 'notify', ARGV[4], 'retention', ARGV[5],
             'retries', '0')
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if head[1] ~= ARGV[2] then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100, '*', 'due', ARGV[1])
return 1
)lua";

// Claims a uniqueness key for a task, or names the task that holds it.
// KEYS[1] P{Q}:unique:KEY   ARGV[1] task id   ARGV[2] window ms
// Returns {1} when claimed, {0, holder id} when taken.
inline constexpr std::string_view kUniqueScript = R"lua(
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
return {0, redis.call('GET', KEYS[1])}
)lua";

// Cancels a task wherever it is.
// KEYS[1] P{Q}:task:ID   KEYS[2] P{Q}:delayed   KEYS[3] P{Q}   KEYS[4] P{Q}:cancels
// ARGV[1] now ms   ARGV[2] server group   ARGV[3] task id
// Returns {what, detail}: {'unknown'}; {'delayed'|'ready', notify id} when it
// was removed; {'active', ''} when servers were asked to stop it (the one
// running it sends the notification); {'finished', state} when too late.
inline constexpr std::string_view kCancelScript = R"lua(
-- Delivered = in the group's PEL; no group yet (no server ever started) means
-- nothing was delivered.
local function delivered(stream, group, e)
  local p = redis.pcall('XPENDING', stream, group, e, e, 1)
  return type(p) == 'table' and not p.err and #p == 1
end
local h = redis.call('HMGET', KEYS[1], 'state', 'member', 'entry', 'notify', 'retention')
local st = h[1]
if not st then return {'unknown'} end
local function canceled()
  local ttl = tonumber(h[5] or '86400000')
  if ttl == 0 then
    redis.call('DEL', KEYS[1])
  else
    redis.call('HSET', KEYS[1], 'state', 'canceled', 'updated', ARGV[1], 'finished', ARGV[1])
    redis.call('HDEL', KEYS[1], 'member', 'entry', 'run_at')
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
if (st == 'delayed' or st == 'failed') and h[2] and redis.call('ZREM', KEYS[2], h[2]) == 1 then
  canceled()
  return {'delayed', h[4] or ''}
end
if st == 'ready' then
  local e = h[3]
  if e and not delivered(KEYS[3], ARGV[2], e) and redis.call('XDEL', KEYS[3], e) == 1 then
    canceled()
    return {'ready', h[4] or ''}
  end
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 1000, '*', 'id', ARGV[3])
  return {'active', ''}
end
return {'finished', st}
)lua";

// Reads a state record, deriving "active" (ready, entry in the PEL).
// KEYS[1] P{Q}:task:ID   KEYS[2] P{Q}   ARGV[1] server group
// Returns the hash as a flat list (nil when unknown), plus 'active','1' if so.
inline constexpr std::string_view kGetScript = R"lua(
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return nil end
local st, entry
for i = 1, #h - 1, 2 do
  if h[i] == 'state' then st = h[i + 1] elseif h[i] == 'entry' then entry = h[i + 1] end
end
local p = entry and st == 'ready' and redis.pcall('XPENDING', KEYS[2], ARGV[1], entry, entry, 1)
if type(p) == 'table' and not p.err and #p == 1 then
  h[#h + 1] = 'active'
  h[#h + 1] = '1'
end
return h
)lua";

}  // namespace streamfleet::detail
