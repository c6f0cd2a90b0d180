-- One message (after apply.lua): the fan-out stage of the benchmark publishes with it
-- (bench/loadgen-go/redis.go).
-- KEYS: history, meta, state, client_id key, offset index[, deletes, deleted]
-- ARGV: offset, message json, live payload, channel, history max, partition, publish?, has client_id?, ttl,
--       (unused: the index entry is made from the offset)[, history max bytes, idle ttl]
-- Without the optional arguments the window is bounded by count only and never expires.
local room = {history = KEYS[1], meta = KEYS[2], cid = KEYS[4], offsets = KEYS[5], deletes = KEYS[6],
              deleted = KEYS[7]}
local rec = {offset = ARGV[1], partition = ARGV[6], publish = ARGV[7], keep = '1', channel = ARGV[4],
             payload = ARGV[3]}
local bounds = {max = tonumber(ARGV[5]), max_bytes = tonumber(ARGV[11] or '') or math.huge,
                cid_ttl = tonumber(ARGV[9]), idle_ttl = tonumber(ARGV[12] or '') or 0}
local call = new_call(KEYS[3], bounds)
local outcome = apply_message(call, room, rec, ARGV[2], ARGV[8])
finish(call)
return outcome
