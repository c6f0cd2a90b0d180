-- What the room directory reads of the addresses that took part in rooms (stream/directory.py;
-- chat_common/participants.lua put before this), in one call:
-- 1. rooms nobody took part in for the window are dropped from both directory sets (at most
--    ARGV[3] per call: their addresses keys have expired already);
-- 2. each candidate room's addresses are pruned and counted, and its rank updated, so a
--    count read here is never one that aged out.
-- KEYS: [1] the ranking, [2] the newest times, [2 + i] the i-th candidate's addresses
-- ARGV: [1] now (epoch s, whole), [2] the window in seconds, [3] idle rooms dropped at most,
--       [3 + i] the i-th candidate room
-- Returns the candidates' counts, in order.
local now, window_s = tonumber(ARGV[1]), tonumber(ARGV[2])
local idle = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - window_s), 'LIMIT', 0, tonumber(ARGV[3]))
for _, room in ipairs(idle) do
  redis.call('ZREM', KEYS[1], room)
  redis.call('ZREM', KEYS[2], room)
end
local counts = {}
for i = 1, #KEYS - 2 do
  counts[i] = count_addresses(KEYS[2 + i], KEYS[1], KEYS[2], ARGV[3 + i], now, window_s, true)
end
return counts
