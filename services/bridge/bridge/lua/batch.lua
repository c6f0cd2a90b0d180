-- A polled batch in one call, in order: what the bridge runs (after apply.lua).
-- KEYS: state, the room directory, then 9 per record: the room's history, meta, deletes,
--       deleted, offsets, the message's client_id key (for another record, any key of the room),
--       changes, edits, reactions
-- ARGV: history max, history max bytes, client_id ttl, idle ttl, then 11 per record: 'm', 'd',
--       'e' or 'r', offset, partition, publish?, keep?, channel, live payload, room, ts, then for
--       a message its json and has client_id?; for a tombstone the deleted id and ''; for an edit
--       the edited id and its {"text", "edited_ts"}; for a reaction the message's id and the change
--       (+ or -, the emoji, a line feed, the user)
-- Returns one outcome per record. The room directory gets each room's newest ts in the
-- batch (only ever later, so replays change nothing).
local bounds = {max = tonumber(ARGV[1]), max_bytes = tonumber(ARGV[2]), cid_ttl = tonumber(ARGV[3]),
                idle_ttl = tonumber(ARGV[4])}
local call = new_call(KEYS[1], bounds)
local outcomes, newest = {}, {}
local n = (#ARGV - 4) / 11
for r = 0, n - 1 do
  local k, a = 2 + 9 * r, 4 + 11 * r
  local room = {history = KEYS[k + 1], meta = KEYS[k + 2], deletes = KEYS[k + 3], deleted = KEYS[k + 4],
                offsets = KEYS[k + 5], cid = KEYS[k + 6], changes = KEYS[k + 7], edits = KEYS[k + 8],
                reactions = KEYS[k + 9]}
  local rec = {offset = ARGV[a + 2], partition = ARGV[a + 3], publish = ARGV[a + 4], keep = ARGV[a + 5],
               channel = ARGV[a + 6], payload = ARGV[a + 7]}
  local kind = ARGV[a + 1]
  if kind == 'm' then
    outcomes[r + 1] = apply_message(call, room, rec, ARGV[a + 10], ARGV[a + 11])
    local name, ts = ARGV[a + 8], tonumber(ARGV[a + 9])
    if not newest[name] or ts > newest[name] then newest[name] = ts end
  elseif kind == 'd' then
    outcomes[r + 1] = apply_tombstone(call, room, rec, ARGV[a + 10])
  elseif kind == 'e' then
    outcomes[r + 1] = apply_edit(call, room, rec, ARGV[a + 10], ARGV[a + 11])
  else
    outcomes[r + 1] = apply_reaction(call, room, rec, ARGV[a + 10], ARGV[a + 11])
  end
end
finish(call)
for name, ts in pairs(newest) do redis.call('ZADD', KEYS[2], 'GT', ts, name) end
return outcomes
