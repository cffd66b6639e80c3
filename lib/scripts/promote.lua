-- promote: moves due delayed tasks and retries into the stream.
--
-- KEYS[1] P{Q}:delayed   KEYS[2] P{Q}
-- KEYS[3] P{Q}:task:, the prefix of the state records. The records touched
--         are KEYS[3] .. id for the ids inside the members moved, which no
--         caller can know ahead; they carry KEYS[3]'s hash tag, so they live
--         in the same slot as every other key here.
-- KEYS[4] P{Q}:dead, where a member that is not a task goes
-- KEYS[5] P{Q}:finished, the counts of tasks ended (dead, canceled)
-- ARGV[1] now (unix ms)   ARGV[2] most members to move
-- Returns {members taken off the set, score of the earliest remaining member
-- or -1, members dead-lettered, {id, notify client id, ...} of the tasks
-- canceled here}.
--
-- Atomic so that a due task is never in the set and the stream at once (run
-- twice) or in neither (lost), whatever number of promoters race.
-- Members are msgpack arrays of alternating field/value strings (an entry).
--
-- A member that does not decode to that shape (written by hand, by another
-- tool, or cut short) would make every call fail before it moved anything,
-- so the queue's promotion would stop for good; it goes to the dead letters
-- with its bytes kept (x_raw) and the reason (x_error) instead. So does one
-- with more values than a stream entry can be given here (Lua's stack).
--
-- A tracked task whose record carries a cancel (cancel.lua sets it while the
-- task runs) is finalised as canceled instead of being run again; the caller
-- notifies its client, which lives in another slot.
local kMaxValues = 2000

local function check(ok, nxt, f)
  if not ok then return nil, 'not msgpack (' .. tostring(nxt) .. ')' end
  if nxt ~= -1 then return nil, 'not one msgpack value' end
  if type(f) ~= 'table' then return nil, 'not a msgpack array' end
  local n = #f
  if n == 0 or n % 2 == 1 then return nil, 'not an even, non-zero number of values' end
  if n > kMaxValues then return nil, n .. ' values, more than ' .. kMaxValues end
  for i = 1, n do
    if type(f[i]) ~= 'string' then return nil, 'value ' .. i .. ' is not a string' end
  end
  return f
end

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local dead, canceled = 0, {}
-- Each member leaves the set only after its write succeeded: a refused write
-- ends the script with the member still there, never lost.
for _, m in ipairs(due) do
  local f, why = check(pcall(cmsgpack.unpack_one, m))
  if not f then
    redis.call('XADD', KEYS[4], '*', 'x_raw', m, 'x_error', 'malformed delayed member: ' .. why)
    dead = dead + 1
    redis.call('ZREM', KEYS[1], m)
  else
    local id, tracked
    for j = 1, #f - 1, 2 do
      if f[j] == 'id' then id = f[j + 1] elseif f[j] == 'x_state' then tracked = f[j + 1] == '1' end
    end
    local tk = tracked and id and KEYS[3] .. id
    local h = tk and redis.call('HMGET', tk, 'cancel', 'state', 'notify', 'retention')
    if h and h[1] then
      if h[2] ~= 'canceled' then
        local ttl = tonumber(h[4] or '86400000')
        if ttl == 0 then
          redis.call('DEL', tk)
        else
          redis.call('HSET', tk, 'state', 'canceled', 'updated', ARGV[1], 'finished', ARGV[1])
          redis.call('HDEL', tk, 'member', 'entry', 'run_at')
          redis.call('PEXPIRE', tk, ttl)
        end
        canceled[#canceled + 1] = id
        canceled[#canceled + 1] = h[3] or ''
      end
    else
      local eid = redis.call('XADD', KEYS[2], '*', unpack(f))
      if tk then
        redis.call('HSET', tk, 'state', 'ready', 'entry', eid, 'updated', ARGV[1])
        redis.call('HDEL', tk, 'member', 'run_at')
      end
    end
    redis.call('ZREM', KEYS[1], m)
  end
end
if dead > 0 then redis.call('HINCRBY', KEYS[5], 'dead', dead) end
if #canceled > 0 then redis.call('HINCRBY', KEYS[5], 'canceled', #canceled / 2) end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, #nxt == 0 and -1 or tonumber(nxt[2]), dead, canceled}
