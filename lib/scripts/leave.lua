#!lua flags=allow-oom
-- leave: a stopping server's last word in a queue's registry.
--
-- KEYS[1] P{Q}   KEYS[2] P{Q}:servers   KEYS[3] P{Q}:servers:ID (its token)
-- ARGV[1] consumer group   ARGV[2] server id   ARGV[3] this server's token
-- Returns 1 when it left clean (nothing pending: its entry is removed), 0
-- when entries it could not ack are left (its score becomes 0, "departed":
-- peers take them at once), -1 when another server holds the id (its entry
-- is not ours to touch).
--
-- Atomic because the choice rests on the PEL at the moment of leaving: a
-- shutdown during an outage gives up on writes that Redis may still run
-- later, and removing the entry while entries are left would hide them from
-- the dead-server look until their lease lapses. allow-oom: leaving must not
-- depend on free memory.
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[3] then return -1 end
if holder then redis.call('DEL', KEYS[3]) end
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if type(p) == 'table' and not p.err and #p > 0 then
  redis.call('ZADD', KEYS[2], 0, ARGV[2])
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
