-- enqueue: adds ready tasks to a queue's stream, each with its state record.
--
-- KEYS[1]      P{Q}, the stream
-- KEYS[1 + t]  P{Q}:task:ID of the t-th task (its state record)
-- KEYS[#KEYS]  P{Q}:done, where a finished task's state is (done.lua)
-- ARGV[1]      '1' when the tasks may have been sent before (a resend), so
--              each is checked for a record first; '0' for a first send
-- ARGV, then per task t, in order: created ms, notify client id ('' =
--              untracked), retention ms, n, then the entry's n field/value
--              strings
-- Returns the entry ids, in task order: a task whose record exists already
-- gets the entry its record names (or '' when the record holds none), one
-- that has finished since gets '', and neither is added again.
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
-- refuses the task before its entry exists (unchecked, the record's write
-- finds it, and the entry is taken back). A record outlives its task only by the task's
-- retention: a resend later than that adds the task again. A first send needs
-- no check: a resend travels on a later connection, so Redis always runs the
-- first send before it.
--
-- The record leaves out what its readers default: updated (= created),
-- retries (0), notify ('' = untracked) and retention (24 h): every field
-- written costs Redis time and memory for each task.
-- @include done.lua
local kDefaultRetention = '86400000'
local done = KEYS[#KEYS]
local record_prefix = string.sub(done, 1, #done - #'done') .. 'task:'
local check = ARGV[1] == '1'
local ids = {}
local i = 2
local t = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i + 3])
  if check and redis.call('EXISTS', KEYS[t]) == 1 then
    ids[#ids + 1] = redis.call('HGET', KEYS[t], 'entry') or ''
  elseif check and done_state(done, string.sub(KEYS[t], #record_prefix + 1), ARGV[i]) then
    -- finished (and its record gone) since the first send: asked as of its creation, so a
    -- state still kept is found even when it is past its retention
    ids[#ids + 1] = ''
  else
    local eid = redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 4, i + 3 + n))
    local notify, retention = ARGV[i + 1], ARGV[i + 2]
    local ok
    if notify == '' and retention == kDefaultRetention then
      ok = redis.pcall('HSET', KEYS[t], 'state', 'ready', 'entry', eid, 'created', ARGV[i])
    elseif notify == '' then
      ok = redis.pcall('HSET', KEYS[t], 'state', 'ready', 'entry', eid, 'created', ARGV[i],
                       'retention', retention)
    elseif retention == kDefaultRetention then
      ok = redis.pcall('HSET', KEYS[t], 'state', 'ready', 'entry', eid, 'created', ARGV[i],
                       'notify', notify)
    else
      ok = redis.pcall('HSET', KEYS[t], 'state', 'ready', 'entry', eid, 'created', ARGV[i],
                       'notify', notify, 'retention', retention)
    end
    if type(ok) == 'table' and ok.err then
      -- Unchecked, the record's key was not yet read: the refusal comes here,
      -- and the entry goes with it, so a refused task never runs.
      redis.call('XDEL', KEYS[1], eid)
      return ok
    end
    ids[#ids + 1] = eid
  end
  i = i + 4 + n
  t = t + 1
end
return ids
