-- entry_facts(stream, eid): what a task's entry says of it that its state
-- record would otherwise hold, or nil when the entry is gone: {id, created,
-- notify (the tracking client's id, '' when untracked), retention ('' when
-- the default)}.
local function entry_facts(stream, eid)
  local e = redis.call('XRANGE', stream, eid, eid)[1]
  if not e then return nil end
  local f = {}
  local kv = e[2]
  for i = 1, #kv - 1, 2 do f[kv[i]] = kv[i + 1] end
  return {id = f['id'] or '', created = f['x_enqueued_ts'] or '0',
          notify = (f['send_notif'] == '1' and f['client_id']) or '',
          retention = f['x_retention'] or ''}
end
