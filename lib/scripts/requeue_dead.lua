-- requeue_dead: moves dead letters back into the stream with retries reset.
--
-- KEYS[1] P{Q}:dead   KEYS[2] P{Q}
-- KEYS[3] P{Q}:task:, the prefix of the state records. The records touched
--         are KEYS[3] .. id for the tracked tasks requeued (x_state = 1),
--         which no caller can know ahead; they carry KEYS[3]'s hash tag, so
--         they live in the same slot as every other key here.
-- ARGV[1] now ms   ARGV[2..] dead-letter entry ids
-- Returns how many were requeued (ids no longer present are skipped).
--
-- Atomic so that a dead letter is never both requeued and still listed (run
-- again by a second requeue) nor deleted without being requeued, and so that
-- a tracked task's record says "ready" (with its new entry, no expiry) from
-- the instant it is back in the stream: get() and cancel() find it there.
-- A record already gone (retention 0, or expired) stays gone.
local n = 0
for i = 2, #ARGV do
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #e == 1 then
    local f = e[1][2]
    local id, tracked
    for j = 1, #f - 1, 2 do
      if f[j] == 'retries' then f[j + 1] = '0'
      elseif f[j] == 'id' then id = f[j + 1]
      elseif f[j] == 'x_state' then tracked = f[j + 1] == '1' end
    end
    local eid = redis.call('XADD', KEYS[2], '*', unpack(f))
    redis.call('XDEL', KEYS[1], ARGV[i])
    if tracked and id then
      local tk = KEYS[3] .. id
      if redis.call('EXISTS', tk) == 1 then
        redis.call('HSET', tk, 'state', 'ready', 'entry', eid, 'updated', ARGV[1], 'retries', '0')
        redis.call('HDEL', tk, 'finished', 'member', 'run_at')
        redis.call('PERSIST', tk)
      end
    end
    n = n + 1
  end
end
return n
