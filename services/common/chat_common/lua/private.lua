-- Apply one record of the rooms topic to Redis: at most once, and never an older record over
-- a newer one (ingest applies a record as soon as Kafka holds it; the bridge applies the whole
-- log in order, so it may come later with records older than what ingest wrote).
-- KEYS[1] = chat:private:<room>, KEYS[2] = chat:private:<room>:members
-- ARGV = kind ("room" | "join" | "leave"), offset, then
--   room: owner, invite hash;   join / leave: member
-- Returns 1 if applied, 0 if Redis holds this record or a newer one already.
local kind, offset = ARGV[1], tonumber(ARGV[2])
if kind == "room" then
  local current = tonumber(redis.call("HGET", KEYS[1], "offset"))
  if current and current >= offset then
    return 0
  end
  redis.call("HSET", KEYS[1], "owner", ARGV[3], "invite", ARGV[4], "offset", offset)
  return 1
end
local current = redis.call("HGET", KEYS[2], ARGV[3])
if current and tonumber(string.match(current, "%d+")) >= offset then
  return 0
end
-- A removed member keeps an entry ("x<offset>"), so an older join replayed later stays out.
redis.call("HSET", KEYS[2], ARGV[3], (kind == "join" and "" or "x") .. offset)
return 1
