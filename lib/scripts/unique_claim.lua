-- unique_claim: claims a uniqueness key for a task, or names its holder.
--
-- KEYS[1] P{Q}:unique:KEY
-- ARGV[1] task id   ARGV[2] window ms
-- Returns {1} when claimed (or already held by this task id), {0, holder id}
-- when another task holds it.
--
-- Atomic so that the holder named is the one that made the claim fail, not a
-- later one after the window ended in between.
--
-- Idempotent by task id: when the reply to a claim is lost (a timeout, a
-- dropped link) the client sends it again for the same task, which must
-- succeed; otherwise the key stayed held by a task that was never enqueued
-- and the caller's retry was refused as a duplicate of it.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return {1} end
if not holder and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
return {0, holder}
