-- unique_release: gives a uniqueness key back when its task was refused.
--
-- KEYS[1] P{Q}:unique:KEY
-- ARGV[1] task id the key was claimed for
-- Returns 1 when released, 0 when another task holds it (or nobody).
--
-- Atomic so that a key whose window ended and was claimed by another task
-- meanwhile is not taken from that task.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
