#!lua flags=allow-oom
-- ack: acks a batch of finished entries, then takes out of the stream every
-- entry no reader needs any more.
--
-- KEYS[1] P{Q}   KEYS[2] P{Q}:finished (the counts of tasks ended, by how)
-- ARGV[1] consumer group   ARGV[2] how the batch's tasks ended, as counts:
-- "completed 3 expired 1" ('' = none)   ARGV[3..] the entry ids, ascending
-- Returns the number of entries acked.
--
-- The counts go in only for entries this call acked, so a resend after a lost
-- reply counts nothing twice. When only some were still pending (another
-- server took the rest over, and counts them when it ends them), the acked
-- number is spread over the kinds in order.
--
-- Why not an XDEL of the batch: XDEL finds each entry by scanning its stream
-- node, ~1.6 us an entry, the dearest step of a task's life. Every entry
-- below the group's oldest pending one (below the highest acked one, when
-- nothing is pending) has been delivered and acked, so XTRIM MINID drops them,
-- whole nodes at a time. Only acked entries at or above that floor (a task
-- still running below them) are deleted one by one. Entries are written with
-- ids that only grow ('*'), so none below the floor waits to be delivered.
--
-- allow-oom: acking and trimming free memory; Redis out of memory must take
-- them, or nothing could ever free it.
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 3))
local left = acked
for kind, n in string.gmatch(ARGV[2], '(%a+) (%d+)') do
  n = math.min(tonumber(n), left)
  if n > 0 then redis.call('HINCRBY', KEYS[2], kind, n) end
  left = left - n
end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
local fms, fseq
if pending[1] > 0 then
  fms, fseq = parse(pending[2])
else
  fms, fseq = parse(ARGV[#ARGV])
  if not fms then return acked end
  fseq = fseq + 1
end
redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f-%.0f', fms, fseq))
-- The acked entries at or above the floor: the last ones, the ids being sorted.
local rest = {}
for i = #ARGV, 3, -1 do
  local ms, seq = parse(ARGV[i])
  if not ms or ms < fms or (ms == fms and seq < fseq) then break end
  rest[#rest + 1] = ARGV[i]
end
if #rest > 0 then redis.call('XDEL', KEYS[1], unpack(rest)) end
return acked
