-- A room's offset index trimmed to what the log retains (index.py; after offsets.lua).
-- KEYS[1]: a room's offset index; KEYS[2], KEYS[3] (optional): its edits and reactions hashes.
-- ARGV[1]: the partition's first offset. Drops the index entries below it but the newest of
-- them, which stays first: the mark that retention removed some of the room's messages
-- (readers skip it); and the edits and reactions of the messages below it (no read shows those
-- messages again). Returns the index entries dropped.
local first = tonumber(ARGV[1])
for k = 2, #KEYS do
  local gone = {}
  for _, id in ipairs(redis.call('HKEYS', KEYS[k])) do
    if tonumber(id) < first then gone[#gone + 1] = id end
  end
  for at = 1, #gone, 1000 do
    redis.call('HDEL', KEYS[k], unpack(gone, at, math.min(at + 999, #gone)))
  end
end
local lo = entries_below(KEYS[1], first)
if lo < 2 then return 0 end
redis.call('SET', KEYS[1], redis.call('GETRANGE', KEYS[1], (lo - 1) * 8, -1))
return lo - 1
