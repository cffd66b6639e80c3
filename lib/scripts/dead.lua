-- dead: the servers of a queue that count as dead by Redis's clock.
--
-- KEYS[1] P{Q}:servers
-- ARGV[1] dead_after ms
-- Returns {id, score, id, score, ...} of the servers whose beat is older
-- than dead_after (departed ones, score 0, among them).
--
-- A script so that the cutoff comes from Redis's TIME, the clock the beats
-- were stamped with (beat.lua), not from the host's. It only points at
-- candidates: claim.lua and forget.lua check again in the step that acts.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[1])),
                  'WITHSCORES')
