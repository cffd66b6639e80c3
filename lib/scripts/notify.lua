-- notify: writes one notification to its tracking client's stream, unless
-- that client is gone.
--
-- KEYS[1] P:receiver:{CLIENT}, the client's notification stream
-- ARGV[1] '1' = write even when the stream is absent, '0' = only into an
--         existing stream
-- ARGV[2..] the notification's field/value pairs
-- Returns the new entry id, or false when nothing was written.
--
-- A tracking client creates its stream (with its group) when it opens and
-- deletes it when it closes, so an absent stream means nobody will read the
-- notification; a plain XADD would recreate the stream, and nothing would
-- ever delete it. Atomic so that the check and the XADD are one step. ARGV[1]
-- = '1' is for clients of the Go library, which create their stream lazily
-- and clean up after themselves by heartbeat.
if ARGV[1] ~= '1' and redis.call('TYPE', KEYS[1]).ok ~= 'stream' then
  return false
end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
