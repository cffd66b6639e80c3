-- done_state(done, id, now): a finished task's state from the buckets of
-- P{Q}:done (core/done_format.hpp), or nil: {state, finished, created,
-- retries} as strings. A state past its finished + retention is not
-- returned, even while its bucket lives on.
local done_letters = {c = 'completed', e = 'expired', x = 'canceled'}
local function done_state(done, id, now)
  local families = redis.call('ZRANGEBYSCORE', done, now, '+inf')
  if #families == 0 then return nil end
  -- core/done_format.cpp shard_hash, in doubles: below 2^24 * 31 + 255, so exact
  local h = 0
  for i = 1, #id do h = (h * 31 + string.byte(id, i)) % 16777216 end
  for _, m in ipairs(families) do
    local shards, retention = string.match(m, '%.(%d+)%.(%d+)$')
    if shards then
      local v = redis.call('HGET', done .. ':' .. m .. ':' .. (h % tonumber(shards)), id)
      local letter, fin, age, retries
      if v then letter, fin, age, retries = string.match(v, '^(%a)(%w+),(%w+),?(%d*)$') end
      fin = fin and tonumber(fin, 36)
      if fin and fin + tonumber(retention) >= tonumber(now) then
        return {done_letters[letter] or letter, tostring(fin), tostring(fin - tonumber(age, 36)),
                retries ~= '' and retries or '0'}
      end
    end
  end
  return nil
end
