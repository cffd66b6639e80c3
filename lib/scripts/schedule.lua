-- schedule: adds a delayed task to P{Q}:delayed and wakes the promoters when
-- it became the earliest one.
--
-- KEYS[1] P{Q}:delayed   KEYS[2] P{Q}:nudge
-- KEYS[3] P{Q}:task:ID, the state record, and KEYS[4] P{Q}:done, with
--         ARGV[3] 'record'; or P{Q}:sent:CLIENT, the client's ledger (see
--         add.lua), with 'ledger'
-- ARGV[1] due unix ms    ARGV[2] member (msgpack array of the entry's fields)
-- ARGV[3] 'record':  ARGV[4] now ms, ARGV[5] notify client id, ARGV[6] retention ms,
--                    ARGV[7] task id
--         'ledger':  ARGV[4] the task's number, ARGV[5] floor, ARGV[6] ledger ttl ms
-- Returns 1 when a nudge was sent, else 0.
--
-- Atomic so that the nudge is sent exactly when the task became the head of
-- the set: promoters sleep until the earliest due time and re-arm on nudges
-- (XREAD of P{Q}:nudge), they never poll. Idempotent by task: a resend after
-- a lost reply finds the record, its finished state (or the ledger's note) of
-- the first send and adds nothing -- re-adding the member could run the task
-- twice once it has been promoted, run, or canceled.
-- @include done.lua
if ARGV[3] == 'record' then
  if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
  if done_state(KEYS[4], ARGV[7], ARGV[4]) then return 0 end
else
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[5])
  if redis.call('ZSCORE', KEYS[3], ARGV[4]) then return 0 end
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == 'record' then
  -- as enqueue.lua's, without the fields at their readers' defaults
  redis.call('HSET', KEYS[3], 'state', 'delayed', 'member', ARGV[2], 'run_at', ARGV[1],
             'created', ARGV[4])
  if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], 'notify', ARGV[5]) end
  if ARGV[6] ~= '86400000' then redis.call('HSET', KEYS[3], 'retention', ARGV[6]) end
else
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[4])
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if head[1] ~= ARGV[2] then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100, '*', 'due', ARGV[1])
return 1
