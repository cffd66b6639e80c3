-- forget: removes a dead server from a queue's consumer group and registry,
-- only while it is still dead, owns nothing and has stopped reading.
--
-- KEYS[1] P{Q}   KEYS[2] P{Q}:servers
-- ARGV[1] consumer group   ARGV[2] the server's consumer name
-- ARGV[3] dead_after ms: a beat older than this, by Redis's TIME, is a dead
--   server's
-- ARGV[4] ms the consumer must have been idle (no read, no claim)
-- Returns 1 when it was forgotten, 0 when it beat again, owns entries or
-- still reads.
--
-- Atomic because XGROUP DELCONSUMER drops the consumer's pending entries
-- with it: a server restarted under the same name may have read entries since
-- the caller found it dead and its PEL empty. A beat can look stale while its
-- server lives (Redis refused it, the server's timer stalled); such a server
-- still touches its consumer: every entry delivered to it and every lease it
-- renews (XCLAIM) does, and from Redis 7.2 on every read attempt too. The
-- consumer's own idle time (XINFO CONSUMERS) is that evidence; a server it
-- finds silent that reads again is recreated by its next delivery.
local beat = redis.call('ZSCORE', KEYS[2], ARGV[2])
if beat and tonumber(beat) > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if tonumber(beat) >= now - tonumber(ARGV[3]) then return 0 end
end
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if type(p) ~= 'table' or p.err or #p > 0 then return 0 end
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(consumers) ~= 'table' or consumers.err then return 0 end
for _, c in ipairs(consumers) do
  local name, idle
  for j = 1, #c, 2 do
    if c[j] == 'name' then name = c[j + 1] end
    if c[j] == 'idle' then idle = c[j + 1] end
  end
  if name == ARGV[2] and tonumber(idle) < tonumber(ARGV[4]) then return 0 end
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
