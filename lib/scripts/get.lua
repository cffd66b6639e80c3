-- get: reads a task's state record, deriving "active".
--
-- KEYS[1] P{Q}:task:ID   KEYS[2] P{Q}
-- ARGV[1] server group
-- Returns the record as a flat field/value list (nil when unknown), with
-- 'active', '1' appended when the task is ready and its entry is in the
-- group's PEL.
--
-- Atomic so that the record and the PEL are read at one instant: "active" is
-- never stored, which costs the fast path no write when a server picks a task up.
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
