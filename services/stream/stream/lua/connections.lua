-- One client address's open streams, across every worker and instance (stream/limits.py).
-- KEYS[1]: the address's streams (sorted set: member = connection id, score = expiry).
-- ARGV: now, expiry, connection id, the cap, the key's TTL.
-- Drop expired streams (a crashed worker's); if the address holds the cap already, return 0;
-- else hold a place for the connection, return 1.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
