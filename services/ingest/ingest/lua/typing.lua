-- A typing signal (ingest/typing_signals.py): at most one per name and room per interval,
-- published on the room's channel. One script, so two signals at once cannot both pass.
--
-- KEYS[1]: the name's last signal in the room. ARGV: interval in ms, channel, payload.
-- Returns 0 once published, else the milliseconds until the next signal is allowed.
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', tonumber(ARGV[1])) then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 0
end
return math.max(1, redis.call('PTTL', KEYS[1]))
