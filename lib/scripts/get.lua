-- get: reads a task's state record, deriving "active"; once the task has
-- finished (and its record is gone), its state from the buckets of P{Q}:done.
--
-- KEYS[1] P{Q}:task:ID   KEYS[2] P{Q}   KEYS[3] P{Q}:done
-- ARGV[1] server group   ARGV[2] task id   ARGV[3] now ms
-- Returns the record as a flat field/value list (nil when unknown), with
-- 'active', '1' appended when the task is ready and its entry is in the
-- group's PEL.
--
-- Atomic so that the record and the PEL are read at one instant: "active" is
-- never stored, which costs the fast path no write when a server picks a task up.
-- @include done.lua
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then
  local d = done_state(KEYS[3], ARGV[2], ARGV[3])
  if not d then return nil end
  return {'state', d[1], 'finished', d[2], 'created', d[3], 'retries', d[4]}
end
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
