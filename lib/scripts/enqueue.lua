-- enqueue: adds ready tasks to a queue's stream, each with its state record.
--
-- KEYS[1]      P{Q}, the stream
-- KEYS[1 + t]  P{Q}:task:ID of the t-th task (its state record)
-- ARGV, per task t, in order: created ms, notify client id ('' = untracked),
--              retention ms, n, then the entry's n field/value strings
-- Returns the entry ids, in task order: a task whose record exists already
-- gets the entry its record names (or '' when the record holds none) and is
-- not added again.
--
-- Atomic because the record must always know its entry: cancel() removes a
-- not-yet-delivered task by the entry id in the record. A client sends one
-- call for all such tasks of one loop turn; a script call costs Redis more
-- than the two commands inside it, so it is paid once per batch.
--
-- Idempotent by task id: a client resends a task whose reply it lost (a
-- timeout, a dropped connection, a batch split after a refusal), and that
-- resend must not add a second entry. The record is the proof of the first
-- send, checked in the same step as the XADD. The check runs before anything
-- of the task is written, so a record key of the wrong type (HGET: WRONGTYPE)
-- refuses the task before its entry exists. A record outlives its task only by the task's
-- retention: a resend later than that adds the task again.
local ids = {}
local i = 1
local t = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i + 3])
  if redis.call('EXISTS', KEYS[t]) == 1 then
    ids[#ids + 1] = redis.call('HGET', KEYS[t], 'entry') or ''
  else
    local eid = redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 4, i + 3 + n))
    redis.call('HSET', KEYS[t], 'state', 'ready', 'entry', eid, 'created', ARGV[i],
               'updated', ARGV[i], 'notify', ARGV[i + 1], 'retention', ARGV[i + 2], 'retries', '0')
    ids[#ids + 1] = eid
  end
  i = i + 4 + n
  t = t + 1
end
return ids
