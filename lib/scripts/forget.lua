-- forget: removes a dead server from a queue's consumer group and registry,
-- only while it is still dead and owns nothing.
--
-- KEYS[1] P{Q}   KEYS[2] P{Q}:servers
-- ARGV[1] consumer group   ARGV[2] the server's consumer name
-- ARGV[3] cutoff ms: a heartbeat older than this is a dead server's
-- Returns 1 when it was forgotten, 0 when it beat again or owns entries.
--
-- Atomic because XGROUP DELCONSUMER drops the consumer's pending entries
-- with it: a server restarted under the same name may have read entries since
-- the caller found it dead and its PEL empty. A server writes its heartbeat
-- before its first read, so checking the beat and the PEL in the same step as
-- the delete never drops live work.
local beat = redis.call('ZSCORE', KEYS[2], ARGV[2])
if beat and tonumber(beat) >= tonumber(ARGV[3]) then return 0 end
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if type(p) ~= 'table' or p.err or #p > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
