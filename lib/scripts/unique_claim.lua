-- unique_claim: claims a uniqueness key for a task, or names its holder.
--
-- KEYS[1] P{Q}:unique:KEY
-- ARGV[1] task id   ARGV[2] window ms
-- Returns {1} when claimed, {0, holder id} when taken.
--
-- Atomic so that the holder named is the one that made the claim fail, not a
-- later one after the window ended in between.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
return {0, redis.call('GET', KEYS[1])}
