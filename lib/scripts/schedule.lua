-- schedule: adds a delayed task to P{Q}:delayed and wakes the promoters when
-- it became the earliest one.
--
-- KEYS[1] P{Q}:delayed   KEYS[2] P{Q}:nudge
-- KEYS[3] P{Q}:task:ID, the state record (only for tasks with one)
-- ARGV[1] due unix ms    ARGV[2] member (msgpack array of the entry's fields)
-- ARGV[3] now ms         ARGV[4] notify client id   ARGV[5] retention ms
--         (ARGV[3..5] only with KEYS[3])
-- Returns 1 when a nudge was sent, else 0.
--
-- Atomic so that the nudge is sent exactly when the task became the head of
-- the set: promoters sleep until the earliest due time and re-arm on nudges
-- (XREAD of P{Q}:nudge), they never poll. Idempotent: a resend after a lost
-- reply re-adds the same member with the same score.
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
if KEYS[3] then
  redis.call('HSET', KEYS[3], 'state', 'delayed', 'member', ARGV[2], 'run_at', ARGV[1],
             'created', ARGV[3], 'updated', ARGV[3], 'notify', ARGV[4], 'retention', ARGV[5],
             'retries', '0')
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if head[1] ~= ARGV[2] then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100, '*', 'due', ARGV[1])
return 1
