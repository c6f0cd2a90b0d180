-- One message (after apply.lua): the fan-out stage of the benchmark publishes with it
-- (bench/loadgen-go/redis.go).
-- KEYS: history, meta, state, client_id key, offset index
-- ARGV: offset, message json, live payload, channel, history max, partition, publish?, has client_id?, ttl,
--       the offset as an index entry
return apply_message(KEYS[3], KEYS[1], KEYS[2], KEYS[4], KEYS[5], ARGV[1], ARGV[6], ARGV[7], ARGV[4], ARGV[3],
                     ARGV[2], ARGV[8], ARGV[9], ARGV[5], ARGV[10])
