-- keep: renews the lease of entries this server still owns.
--
-- KEYS[1] P{Q}
-- ARGV[1] consumer group   ARGV[2] this server's consumer name
-- ARGV[3..] entry ids
-- Returns the ids whose lease was renewed (an entry deleted from the stream
-- meanwhile is dropped from the PEL by XCLAIM and is not among them).
--
-- Atomic so that the ownership check and the XCLAIM are one step: a plain
-- XCLAIM would steal back an entry a peer took over after our lease lapsed,
-- and then both would run it. JUSTID keeps the delivery count as it is.
local kept = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    if #claimed == 1 then kept[#kept + 1] = ARGV[i] end
  end
end
return kept
