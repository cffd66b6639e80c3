-- requeue_dead: moves dead letters back into the stream with retries reset.
--
-- KEYS[1] P{Q}:dead   KEYS[2] P{Q}
-- ARGV[1..] dead-letter entry ids
-- Returns how many were requeued (ids no longer present are skipped).
--
-- Atomic so that a dead letter is never both requeued and still listed (run
-- again by a second requeue) nor deleted without being requeued.
local n = 0
for i = 1, #ARGV do
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #e == 1 then
    local f = e[1][2]
    for j = 1, #f - 1, 2 do
      if f[j] == 'retries' then f[j + 1] = '0' end
    end
    redis.call('XADD', KEYS[2], '*', unpack(f))
    redis.call('XDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
