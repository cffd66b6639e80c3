-- finish: records the final states of tasks finished in one loop turn
-- (completed, expired, canceled), before their batch's XACK.
--
-- KEYS[1]      P{Q} (the records share its hash tag)
-- KEYS[1 + t]  P{Q}:task:ID of the t-th task
-- ARGV[1] now ms; then per task t: state, error, retries, retention ms
-- Returns 1.
--
-- One call for a whole batch: a script call costs Redis more than the
-- commands inside it, so it is paid once per loop turn, not per task.
for t = 2, #KEYS do
  local i = 2 + (t - 2) * 4
  local k = KEYS[t]
  local ttl = tonumber(ARGV[i + 3])
  if ttl == 0 then
    redis.call('DEL', k)
  else
    -- entry/member/run_at stay: readers look at them only in the states that
    -- own them, and leaving them saves a command per task on the hot path
    redis.call('HSET', k, 'state', ARGV[i], 'updated', ARGV[1], 'finished', ARGV[1],
               'error', ARGV[i + 1], 'retries', ARGV[i + 2])
    redis.call('PEXPIRE', k, ttl)
  end
end
return 1
