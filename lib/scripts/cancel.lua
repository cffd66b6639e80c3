-- cancel: cancels a task wherever it is.
--
-- KEYS[1] P{Q}:task:ID   KEYS[2] P{Q}:delayed   KEYS[3] P{Q}   KEYS[4] P{Q}:cancels
-- KEYS[5] P{Q}:done   KEYS[6] P{Q}:index   KEYS[7] P{Q}:finished (counts)
-- ARGV[1] now ms   ARGV[2] server group   ARGV[3] task id
-- Returns {'unknown'}; {'delayed'|'ready', notify id} when the task was
-- removed before any server had it; {'active', ''} when servers were asked
-- to stop it (the one running it, or whichever would run it next, sends the
-- notification); {'finished', state} when it was too late.
--
-- Atomic because a task moves between the set, the stream and the group's
-- PEL: checked and removed in one step it cannot both run and be reported
-- canceled.
--
-- A cancel of a running task sticks: besides the request on P{Q}:cancels
-- (heard only by servers running it at that instant) the record keeps a
-- `cancel` field (the time asked). move.lua then finalises a retry or a
-- return as canceled instead, promote.lua a delayed one, and a server that
-- is delivered the entry again (after a crash) checks it before running.
-- A ready or running task on the hot path has no record: P{Q}:index names
-- its entry, and the entry the rest (lib/scripts/enqueue.lua); canceled, or
-- asked to stop, it gets a record. A finished task's state is in the buckets
-- of P{Q}:done. Tasks without state tracking cannot be canceled (the caller
-- gets 'unknown').
-- @include done.lua
-- @include entry.lua

-- Delivered = in the group's PEL; no group yet (no server ever started) means
-- nothing was delivered.
local function delivered(stream, group, e)
  local p = redis.pcall('XPENDING', stream, group, e, e, 1)
  return type(p) == 'table' and not p.err and #p == 1
end
local h = redis.call('HMGET', KEYS[1], 'state', 'member', 'entry', 'notify', 'retention')
local st = h[1]
local indexed, created = false, nil
if not st then
  local eid = redis.call('HGET', KEYS[6], ARGV[3])
  if not eid then
    local d = done_state(KEYS[5], ARGV[3], ARGV[1])
    if d then return {'finished', d[1]} end
    return {'unknown'}
  end
  local f = entry_facts(KEYS[3], eid) or {created = '0', notify = '', retention = ''}
  st, indexed, created = 'ready', true, f.created
  h = {st, false, eid, f.notify ~= '' and f.notify, f.retention ~= '' and f.retention}
end
-- An indexed task leaves the index for a record: every fact of it goes along.
local function adopt()
  redis.call('HDEL', KEYS[6], ARGV[3])
  redis.call('HSET', KEYS[1], 'state', st, 'entry', h[3], 'created', created)
  if h[4] then redis.call('HSET', KEYS[1], 'notify', h[4]) end
  if h[5] then redis.call('HSET', KEYS[1], 'retention', h[5]) end
end
local function canceled()
  redis.call('HINCRBY', KEYS[7], 'canceled', 1)
  local ttl = tonumber(h[5] or '86400000')
  if indexed then redis.call('HDEL', KEYS[6], ARGV[3]) end
  if ttl == 0 then
    redis.call('DEL', KEYS[1])
  else
    redis.call('HSET', KEYS[1], 'state', 'canceled', 'updated', ARGV[1], 'finished', ARGV[1])
    if indexed then redis.call('HSET', KEYS[1], 'created', created) end
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
  if indexed then adopt() end
  redis.call('HSET', KEYS[1], 'cancel', ARGV[1])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 1000, '*', 'id', ARGV[3])
  return {'active', ''}
end
return {'finished', st}
