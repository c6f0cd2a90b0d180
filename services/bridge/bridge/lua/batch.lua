-- A polled batch in one call, in order: what the bridge runs (after apply.lua).
-- KEYS: state, the room directory, then 4 per record: history, meta, and for a message its
--       client_id key and offset index, for a tombstone the room's deleted set and deletes
-- ARGV: history max, client_id ttl, then 11 per record: 'm' or 'd', offset,
--       partition, publish?, channel, live payload, room, ts, then for a message its json,
--       has client_id?, the offset as an index entry; for a tombstone the deleted id, '', ''
-- Returns one outcome per record. The room directory gets each room's newest ts in the
-- batch (only ever later, so replays change nothing).
local outcomes, newest = {}, {}
local n = (#ARGV - 2) / 11
for r = 0, n - 1 do
  local k, a = 2 + 4 * r, 2 + 11 * r
  if ARGV[a + 1] == 'm' then
    outcomes[r + 1] = apply_message(KEYS[1], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], ARGV[a + 2],
                                    ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 9], ARGV[a + 10],
                                    ARGV[2], ARGV[1], ARGV[a + 11])
    local room, ts = ARGV[a + 7], tonumber(ARGV[a + 8])
    if not newest[room] or ts > newest[room] then newest[room] = ts end
  else
    outcomes[r + 1] = apply_tombstone(KEYS[1], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], ARGV[a + 2],
                                      ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 9])
  end
end
for room, ts in pairs(newest) do redis.call('ZADD', KEYS[2], 'GT', ts, room) end
return outcomes
