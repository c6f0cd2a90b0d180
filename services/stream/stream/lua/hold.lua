-- A connection holds its name in a room for its browser session (stream/presence.py).
-- KEYS[1]: the name's holds (sorted set: member = session .. "\n" .. connection, score = expiry).
-- ARGV: now, expiry, session, member, the key's TTL.
-- Drop expired holds; if another session holds the name, return 0; else hold it, return 1.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local prefix = ARGV[3] .. '\n'
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if string.sub(member, 1, #prefix) ~= prefix then
        return 0
    end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
