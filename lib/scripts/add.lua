-- add: adds ready tasks that keep no state record to a queue's stream, each
-- noted in its client's ledger so that a resend adds nothing twice.
--
-- KEYS[1] P{Q}, the stream
-- KEYS[2] P{Q}:sent:CLIENT, the sending client's ledger (zset: member and
--         score are a task's number, which the client gives its tasks in the
--         order it accepts them)
-- ARGV[1] floor: every task of this client numbered below it is settled (its
--         reply came back), so will never be sent again
-- ARGV[2] the ledger's time to live, ms
-- ARGV, per task from ARGV[3]: its number, n, then the entry's n field/value
--         strings
-- Returns the entry ids in task order; '' for a task the ledger already holds
-- (added by an earlier send), which is not added again.
--
-- Why: a client resends a task whose reply it lost (a timeout, a dropped
-- connection, a batch split after a refusal), and the first send may have run.
-- Without a state record nothing else remembers that send, so the ledger
-- does, checked and written in the same step as the XADD. It holds only the
-- tasks not yet settled: each call drops what is below the floor, so it stays
-- as small as the client's window in flight. One ZADD NX both checks and
-- notes a task; an XADD Redis refuses takes its note back before the error
-- ends the script, so a refused task is never taken for one already added.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
local ids = {}
local i = 3
while i <= #ARGV do
  local seq = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  if redis.call('ZADD', KEYS[2], 'NX', seq, seq) == 0 then
    ids[#ids + 1] = ''
  else
    local id = redis.pcall('XADD', KEYS[1], '*', unpack(ARGV, i + 2, i + 1 + n))
    if type(id) == 'table' and id.err then
      redis.call('ZREM', KEYS[2], seq)
      return id
    end
    ids[#ids + 1] = id
  end
  i = i + 2 + n
end
if #ids > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return ids
