-- claim: takes over pending entries, each only while the reason still holds.
--
-- KEYS[1] P{Q}   KEYS[2] P{Q}:servers
-- ARGV[1] consumer group   ARGV[2] the claiming server's consumer name
-- ARGV[3] why: 'own' (a previous life's leftovers: the owner is the claimer),
--   'dead' (a dead server's: the owner is ARGV[4], still dead), or 'idle'
--   (any owner, idle at least ARGV[5])
-- ARGV[4] the owner ('own', 'dead'; ignored for 'idle')
-- ARGV[5] min idle ms: of a dead server's entries (0 once it departed), of
--   any entry ('idle')
-- ARGV[6] dead_after ms
-- ARGV[7..] entry ids
-- Returns {entry, deliveries, entry, deliveries, ...}: each claimed entry as
-- XCLAIM gives it and its delivery count including this one. An entry acked,
-- deleted or taken meanwhile, or whose owner beat again, is left out.
--
-- Atomic so that the checks and the XCLAIM are one step: a plain XCLAIM of
-- ids listed earlier could take an entry that a peer claimed (and runs) in
-- between, or one of a server that turned out alive. A dead server's entry
-- is taken only while its owner is still that server, its beat is still
-- stale by Redis's TIME (or it departed), and both the entry and the owner's
-- consumer have been idle as long as a beat may be missing: a server that
-- still reads (XREADGROUP) or renews leases (keep.lua's XCLAIM) touches its
-- consumer, so a beat that is only refused or late does not cost it its work. XCLAIM's own min-idle is the idle required,
-- so of two claimers racing for one entry the second finds it fresh.
local group, me, why = ARGV[1], ARGV[2], ARGV[3]
local need = 0
if why == 'idle' then need = tonumber(ARGV[5]) end
if why == 'dead' then
  local beat = redis.call('ZSCORE', KEYS[2], ARGV[4])
  if not beat then return {} end  -- forgotten, or left clean
  beat = tonumber(beat)
  if beat > 0 then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    if beat >= now - tonumber(ARGV[6]) then return {} end  -- it beat again
    need = tonumber(ARGV[5])
    local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], group)
    for _, c in ipairs(consumers) do
      local name, idle
      for j = 1, #c, 2 do
        if c[j] == 'name' then name = c[j + 1] end
        if c[j] == 'idle' then idle = c[j + 1] end
      end
      if name == ARGV[4] and tonumber(idle) < need then return {} end
    end
  end
end
local out = {}
for i = 7, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], group, 'IDLE', need, ARGV[i], ARGV[i], 1)
  local ok = #p == 1
  if ok and why == 'own' then ok = p[1][2] == me end
  if ok and why == 'dead' then ok = p[1][2] == ARGV[4] end
  if ok then
    local claimed = redis.call('XCLAIM', KEYS[1], group, me, need, ARGV[i])
    if type(claimed[1]) == 'table' then
      out[#out + 1] = claimed[1]
      out[#out + 1] = p[1][4] + 1
    end
  end
end
return out
