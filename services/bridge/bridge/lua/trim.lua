-- A room's offset index trimmed to what the log retains (index.py; after offsets.lua).
-- KEYS[1]: a room's offset index. ARGV[1]: the partition's first offset. Drops the entries
-- below it but the newest of them, which stays first: the mark that retention removed some of
-- the room's messages (readers skip it). Returns the entries dropped.
local lo = entries_below(KEYS[1], tonumber(ARGV[1]))
if lo < 2 then return 0 end
redis.call('SET', KEYS[1], redis.call('GETRANGE', KEYS[1], (lo - 1) * 8, -1))
return lo - 1
