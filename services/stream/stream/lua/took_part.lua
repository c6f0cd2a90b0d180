-- A stream opened to a room: its client address takes part (chat_common/participants.lua,
-- put before this), but only in a room whose addresses key exists: only a post makes it, and
-- it lasts a day after anyone's last part. A stream to any other room adds nothing to Redis:
-- a room name costs nothing to make up, and an address may open 172,800 streams a day.
-- KEYS: [1] the room's addresses, [2] the directory's ranking, [3] its newest times
-- ARGV: [1] room, [2] address digest, [3] now (epoch s, whole), [4] the window in seconds
-- Returns the room's count of addresses, or -1 when nothing was recorded.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return take_part(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
