-- promote: moves due delayed tasks and retries into the stream.
--
-- KEYS[1] P{Q}:delayed   KEYS[2] P{Q}
-- KEYS[3] P{Q}:task:, the prefix of the state records. The records touched
--         are KEYS[3] .. id for the ids inside the members moved, which no
--         caller can know ahead; they carry KEYS[3]'s hash tag, so they live
--         in the same slot as every other key here.
-- ARGV[1] now (unix ms)   ARGV[2] most members to move
-- Returns {moved, score of the earliest remaining member or -1}.
--
-- Atomic so that a due task is never in the set and the stream at once (run
-- twice) or in neither (lost), whatever number of promoters race.
-- Members are msgpack arrays of alternating field/value strings (an entry).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local f = cmsgpack.unpack(m)
  local eid = redis.call('XADD', KEYS[2], '*', unpack(f))
  redis.call('ZREM', KEYS[1], m)
  local id, tracked
  for j = 1, #f - 1, 2 do
    if f[j] == 'id' then id = f[j + 1] elseif f[j] == 'x_state' then tracked = f[j + 1] == '1' end
  end
  if tracked and id then
    local tk = KEYS[3] .. id
    redis.call('HSET', tk, 'state', 'ready', 'entry', eid, 'updated', ARGV[1])
    redis.call('HDEL', tk, 'member', 'run_at')
  end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #nxt == 0 then return {#due, -1} end
return {#due, tonumber(nxt[2])}
