-- purge_dead: deletes every dead letter of a queue.
--
-- KEYS[1] P{Q}:dead
-- Returns how many there were.
--
-- Atomic so that the count returned is exactly what was deleted.
local n = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
