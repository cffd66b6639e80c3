-- bench/lua_limit.lua: one task's whole life in one server-side call, the
-- floor for "how cheap can a queue on Redis Streams be". bare_loop --scenario
-- lua EVALSHAs it, pipelined in windows of 100.
--
-- KEYS[1] task stream (bare:q)   KEYS[2] notification stream (bare:notify)
-- ARGV[1] payload   ARGV[2] group   ARGV[3] consumer   ARGV[4] "1" = notify
--
-- Redis 7.0 accepts XREADGROUP inside a script only without BLOCK (with BLOCK
-- it answers "ERR XREADGROUP command is not allowed with BLOCK option from
-- scripts"), which is the form used here.
--
-- Returns {id added, id read}; the caller checks they are equal.

local added = redis.call('XADD', KEYS[1], '*', 'p', ARGV[1])
local got = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', 1,
                       'STREAMS', KEYS[1], '>')
if not got then
  return redis.error_reply('BARE_EMPTY XREADGROUP returned nothing')
end
local id = got[1][2][1][1]
-- "handling" is a no-op
redis.call('XACK', KEYS[1], ARGV[2], id)
redis.call('XDEL', KEYS[1], id)
if ARGV[4] == '1' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', 'id', id)
end
return {added, id}
