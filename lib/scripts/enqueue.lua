-- enqueue: adds ready tasks with state tracking to a queue's stream, each
-- findable by its id.
--
-- KEYS[1] P{Q}, the stream   KEYS[2] P{Q}:index   KEYS[3] P{Q}:done
-- KEYS[4] P{Q}:task:, the prefix of the state records (read on resends only)
-- ARGV[1] '1' when the tasks may have been sent before (a resend), so each is
--         looked for first; '0' for a first send
-- ARGV, then per task: its id, n, then the entry's n field/value strings
-- Returns the entry ids, in task order. A task found already (by a resend)
-- gets the entry it has ('' when it is in no stream: delayed, or finished)
-- and is not added again.
--
-- The index maps each task's id to its entry, so get() and cancel() find a
-- ready or running task (cancel() removes one not yet delivered by its entry
-- id): one field per task in one hash per queue, written for the whole batch
-- by one HSET. A state record per task (a new key each) cost Redis twice the
-- time and memory; what else a record held (created, the tracking client,
-- retention) is in the entry. A task gets a record only when it leaves this
-- path: delayed, retried, dead, or a cancel asked while it runs; finished, it
-- leaves the index for a bucket of P{Q}:done (server/final_states.hpp).
--
-- Atomic because the index must always know the entry. A client sends one
-- call for all such tasks of one loop turn; a script call costs Redis more
-- than the commands inside it, so it is paid once per batch.
--
-- Idempotent by task id: a client resends a task whose reply it lost (a
-- timeout, a dropped connection, a batch split after a refusal), and that
-- resend must not add a second entry. The index, a record or a finished
-- state is the proof of the first send, checked in the same step as the
-- XADD. A first send needs no check: a resend travels on a later connection,
-- so Redis always runs the first send before it. An index key of the wrong
-- type refuses the batch, and its entries are taken back, so a refused task
-- never runs.
-- @include done.lua
local check = ARGV[1] == '1'
local ids, indexed = {}, {}
local i = 2
while i <= #ARGV do
  local id, n = ARGV[i], tonumber(ARGV[i + 1])
  local eid
  if check then
    eid = redis.call('HGET', KEYS[2], id)
    if not eid then
      local record = KEYS[4] .. id
      if redis.call('EXISTS', record) == 1 then
        eid = redis.call('HGET', record, 'entry') or ''
      elseif done_state(KEYS[3], id, '0') then
        eid = ''  -- finished since (any state still kept counts)
      end
    end
  end
  if not eid then
    eid = redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 2, i + 1 + n))
    indexed[#indexed + 1] = id
    indexed[#indexed + 1] = eid
  end
  ids[#ids + 1] = eid
  i = i + 2 + n
end
if #indexed > 0 then
  local ok = redis.pcall('HSET', KEYS[2], unpack(indexed))
  if type(ok) == 'table' and ok.err then
    for j = 2, #indexed, 2 do redis.call('XDEL', KEYS[1], indexed[j]) end
    return ok
  end
end
return ids
