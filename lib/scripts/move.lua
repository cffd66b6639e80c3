-- move: writes a read task somewhere else (retry, dead letter, return to the
-- stream), then acks and deletes the entry it was read as.
--
-- KEYS[1] destination: a stream (XADD) or P{Q}:delayed (ZADD)
-- KEYS[2] P{Q}, the stream the entry was read from
-- KEYS[3] P{Q}:nudge: a retry that became the earliest delayed task wakes
--         the other servers' promoters, as a client's schedule does
-- KEYS[4] P{Q}:task:ID, the task's state record (used when ARGV[4] is not '')
-- KEYS[5] P{Q}:index: a task on the hot path has no record yet; it leaves the
--         index for one, with what its entry says of it (enqueue.lua)
-- KEYS[6] P{Q}:finished: the counts of tasks ended, by how (ARGV[10], and canceled)
-- ARGV[1] consumer group     ARGV[2] entry id     ARGV[3] 'xadd' | 'zadd'
-- ARGV[4] new state: '' (no record) | 'failed' (zadd) | 'ready' (xadd to
--         P{Q}) | 'dead' (xadd to P{Q}:dead)
-- ARGV[5] now ms   ARGV[6] error   ARGV[7] retries   ARGV[8] retention ms
-- ARGV[9] the task's packed x_history ('' = none), kept in its record for get()
-- ARGV[10] 'dead' when this move ends the task (counted in KEYS[6]), else ''
-- ARGV[11..] the XADD field/value pairs | score, member
-- Returns 1, or 0 when the entry was no longer pending (already moved), or 2
-- when the task was finalised as canceled instead (below).
--
-- Atomic and ordered: the task is written first and the entry acked only
-- after. redis.call raises on any error, which ends the script before the
-- ack, so a refused write (WRONGTYPE, OOM) leaves the entry pending instead
-- of losing it. MULTI/EXEC would ack even if the write inside it failed.

-- A resend after a lost reply must not write the task twice: act only while
-- the entry is still pending. When the first run ended the task canceled
-- (below), the resend answers 2 again, or its client would never hear of the
-- cancel: the record's `finished` is that run's now, which the resend carries.
local st = ARGV[4]
if #redis.call('XPENDING', KEYS[2], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then
  if (st == 'ready' or st == 'failed')
      and redis.call('HGET', KEYS[4], 'state') == 'canceled'
      and redis.call('HGET', KEYS[4], 'finished') == ARGV[5] then
    return 2
  end
  return 0
end

-- A cancel that reached the task while it ran is kept in its record
-- (cancel.lua); the run may have ended before its server heard of it. A task
-- that would run again (a retry, or a return to the stream) ends canceled
-- here instead; the caller notifies its client.
if (st == 'ready' or st == 'failed') and redis.call('HEXISTS', KEYS[4], 'cancel') == 1 then
  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[2], ARGV[2])
  redis.call('HINCRBY', KEYS[6], 'canceled', 1)
  local ttl = tonumber(redis.call('HGET', KEYS[4], 'retention') or ARGV[8])
  if ttl == 0 then
    redis.call('DEL', KEYS[4])
  else
    redis.call('HSET', KEYS[4], 'state', 'canceled', 'updated', ARGV[5], 'finished', ARGV[5],
               'error', ARGV[6], 'retries', ARGV[7])
    redis.call('HDEL', KEYS[4], 'entry', 'member', 'run_at')
    redis.call('PEXPIRE', KEYS[4], ttl)
  end
  return 2
end

-- An entry's fields as XADD arguments. A task has a few dozen fields at most,
-- but an entry read as it was (a malformed one being dead-lettered, a return)
-- may have any number, and unpack() of more values than Lua's stack holds
-- fails the script, which left such an entry pending and redelivered forever.
-- Past kMaxValues only a prefix is kept, and x_error says how much was dropped.
-- @include entry.lua
local kMaxValues = 2000
local function fields()
  local n = #ARGV - 10
  if n <= kMaxValues then return ARGV, 11, #ARGV end
  local f, err, total = {}, nil, 0
  for i = 11, #ARGV - 1, 2 do
    if ARGV[i] == 'x_error' then
      err = ARGV[i + 1]
    else
      total = total + 1
      if #f < kMaxValues - 2 then
        f[#f + 1] = ARGV[i]
        f[#f + 1] = ARGV[i + 1]
      end
    end
  end
  local note = 'entry had ' .. total .. ' fields; only the first ' .. (#f / 2) .. ' are kept'
  f[#f + 1] = 'x_error'
  f[#f + 1] = err and (err .. ' (' .. note .. ')') or note
  return f, 1, #f
end

-- Read before the entry goes.
local facts = st ~= '' and redis.call('EXISTS', KEYS[4]) == 0 and entry_facts(KEYS[2], ARGV[2])

local eid
if ARGV[3] == 'zadd' then
  redis.call('ZADD', KEYS[1], ARGV[11], ARGV[12])
  if redis.call('ZRANGE', KEYS[1], 0, 0)[1] == ARGV[12] then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100, '*', 'due', ARGV[11])
  end
else
  local f, i, j = fields()
  eid = redis.call('XADD', KEYS[1], '*', unpack(f, i, j))
end
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
if ARGV[10] ~= '' then redis.call('HINCRBY', KEYS[6], ARGV[10], 1) end
if st ~= '' then
  if facts then
    redis.call('HDEL', KEYS[5], facts.id)
    redis.call('HSET', KEYS[4], 'created', facts.created)
    if facts.notify ~= '' then redis.call('HSET', KEYS[4], 'notify', facts.notify) end
    if facts.retention ~= '' then redis.call('HSET', KEYS[4], 'retention', facts.retention) end
  end
  redis.call('HSET', KEYS[4], 'state', st, 'updated', ARGV[5], 'error', ARGV[6], 'retries', ARGV[7])
  if ARGV[9] ~= '' then redis.call('HSET', KEYS[4], 'history', ARGV[9]) end
  if st == 'failed' then
    redis.call('HSET', KEYS[4], 'member', ARGV[12], 'run_at', ARGV[11])
    redis.call('HDEL', KEYS[4], 'entry')
  elseif st == 'ready' then
    redis.call('HSET', KEYS[4], 'entry', eid)
  else
    local ttl = tonumber(ARGV[8])
    if ttl == 0 then
      redis.call('DEL', KEYS[4])
    else
      redis.call('HSET', KEYS[4], 'finished', ARGV[5])
      redis.call('HDEL', KEYS[4], 'entry', 'member', 'run_at')
      redis.call('PEXPIRE', KEYS[4], ttl)
    end
  end
end
return 1
