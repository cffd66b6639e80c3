#!lua flags=allow-oom
-- beat: this server's heartbeat in a queue, stamped with Redis's clock, and
-- its hold on its id.
--
-- KEYS[1] P{Q}:servers   KEYS[2] P{Q}:servers:ID (the id's owner token)
-- ARGV[1] server id   ARGV[2] this server's token (new on every start)
-- ARGV[3] dead_after ms
-- Returns {1, now ms} after the beat, or {0, ms the holder's token still
-- lives} when another server holds the id (nothing is written then).
--
-- The score is Redis's TIME, never the host's clock: every beat and every
-- check of one (dead.lua, claim.lua, forget.lua) then reads one clock, so a
-- host whose clock is off cannot look dead or see live peers as dead.
-- allow-oom: a Redis refusing task data for lack of memory must still take
-- the beat (one score and one small key), or peers would take over a live
-- server's work. The token lives dead_after and only its holder renews it, so
-- a second server started with the same id finds it held, while a crashed
-- one's lapses as its beat goes stale. Atomic so that the check of the holder
-- and the renewal are one step.
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[2] then
  return {0, redis.call('PTTL', KEYS[2])}
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
return {1, now}
