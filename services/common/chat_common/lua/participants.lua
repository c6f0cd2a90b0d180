-- A library for the scripts that record and count the client addresses that took part in a
-- room (chat_common/participants.py): its text is put before theirs (chat_common.lua).
-- room_key: the room's addresses (member = address digest, score = when it last took part);
-- ranking_key: room -> addresses × 2^32 + newest time; recent_key: room -> newest time.

-- 2^21 - 1: a count times 2^32 plus a time in seconds stays an exact integer in a double.
local MAX_COUNTED = 2097151

-- Drop the room's addresses older than the window, then rank the room by those left (in
-- both directory sets), or drop it from them when none is left. Returns how many are left.
-- A room whose oldest address is inside the window is ranked as its last addition left it:
-- read alone, without a write (the directory counts its candidates every 2 s per worker).
local function count_addresses(room_key, ranking_key, recent_key, room, now, window_s, fresh_ok)
  if fresh_ok then
    local oldest = redis.call('ZRANGE', room_key, 0, 0, 'WITHSCORES')[2]
    if oldest and tonumber(oldest) >= now - window_s then return redis.call('ZCARD', room_key) end
  end
  redis.call('ZREMRANGEBYSCORE', room_key, '-inf', '(' .. (now - window_s))
  local count = redis.call('ZCARD', room_key)
  if count == 0 then
    redis.call('ZREM', ranking_key, room)
    redis.call('ZREM', recent_key, room)
    return 0
  end
  local newest = tonumber(redis.call('ZRANGE', room_key, -1, -1, 'WITHSCORES')[2])
  redis.call('ZADD', ranking_key, math.min(count, MAX_COUNTED) * 4294967296 + newest, room)
  redis.call('ZADD', recent_key, newest, room)
  return count
end

-- The address `tag` takes part in the room now (epoch s, whole); returns the room's count.
local function take_part(room_key, ranking_key, recent_key, room, tag, now, window_s)
  redis.call('ZADD', room_key, now, tag)
  redis.call('EXPIRE', room_key, window_s)
  return count_addresses(room_key, ranking_key, recent_key, room, now, window_s, false)
end
