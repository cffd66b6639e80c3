-- get: a task's state: its record, else (a ready or running task on the hot
-- path) its entry through P{Q}:index, else (finished) its bucket of
-- P{Q}:done; "active" is derived, never stored.
--
-- KEYS[1] P{Q}:task:ID   KEYS[2] P{Q}   KEYS[3] P{Q}:done   KEYS[4] P{Q}:index
-- ARGV[1] server group   ARGV[2] task id   ARGV[3] now ms
-- Returns the state as a flat field/value list (nil when unknown), with
-- 'active', '1' appended when the task is ready and its entry is in the
-- group's PEL.
--
-- Atomic so that the record, the index, the buckets and the PEL are read at
-- one instant: a task moves between them, and "active" is never stored,
-- which costs the hot path no write when a server picks a task up.
-- @include done.lua
-- @include entry.lua
local function active(h, st, entry)
  local p = entry and st == 'ready' and redis.pcall('XPENDING', KEYS[2], ARGV[1], entry, entry, 1)
  if type(p) == 'table' and not p.err and #p == 1 then
    h[#h + 1] = 'active'
    h[#h + 1] = '1'
  end
  return h
end
local h = redis.call('HGETALL', KEYS[1])
if #h > 0 then
  local st, entry
  for i = 1, #h - 1, 2 do
    if h[i] == 'state' then st = h[i + 1] elseif h[i] == 'entry' then entry = h[i + 1] end
  end
  return active(h, st, entry)
end
local eid = redis.call('HGET', KEYS[4], ARGV[2])
if eid then
  local f = entry_facts(KEYS[2], eid)
  return active({'state', 'ready', 'entry', eid, 'created', f and f.created or '0'}, 'ready', eid)
end
local d = done_state(KEYS[3], ARGV[2], ARGV[3])
if not d then return nil end
return {'state', d[1], 'finished', d[2], 'created', d[3], 'retries', d[4]}
