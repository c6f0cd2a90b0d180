-- What ingest asks Redis before it produces, in one call (ingest/admission.py):
--
-- 1. a retried client_id the bridge has stored already: its cid key holds the id of the
--    message first stored with it; answer with that message from the room's history window
--    (or '' if it left the window: ingest reads it back from Kafka). An old value holding the
--    whole message JSON is answered as it is.
-- 2. a name held by a present session (the stream holds it while connected): another
--    session may not post under it;
-- 3. the fixed-window budgets, shared by every ingest process and pod: each counter is
--    added to, refused ones included, and the first one over its limit refuses;
-- 4. an admitted post: its client address takes part in the room, for the room directory
--    (chat_common/participants.lua, put before this).
--
-- The checks run in this order, so a replay is never counted and a refused name is not
-- counted either.
--
-- KEYS: [1] the client_id key, [2] the room's history, [3] the name-hold key, [4] the room's
--       meta hash, [5] the room's "created" marker, [6] the room's addresses, [7] the
--       directory's ranking, [8] its newest times, [8 + i] the i-th counter
-- ARGV: [1] look up the client_id? ('1'/'0'), [2] check the name? ('1'/'0'), [3] now (epoch
--       s), [4] this request's session ('' for none), [5] the address digest to record if
--       admitted ('' for none), [6] the room, [7] the participation window in seconds, then
--       three per counter: amount (a
--       number, or 'new': 1 if the room has neither a meta hash nor a "created" marker,
--       else not counted), limit, window in seconds. An admitted request that counted a new
--       room sets the marker for that counter's window, so the room's next posts (before
--       the bridge has written its meta hash) do not count it again; a refused one does not,
--       so refused posts keep counting.
-- Returns {1, id, message JSON or ''} | {2} (the name is held by another session) |
--         {3, i, seconds left} (the i-th counter is over its limit) | {0}

if ARGV[1] == '1' then
  local stored = redis.call('GET', KEYS[1])
  if stored then
    if string.sub(stored, 1, 1) == '{' then
      local id = cjson.decode(stored)['id']
      return {1, tostring(id), stored}
    end
    local found = redis.call('ZRANGEBYSCORE', KEYS[2], stored, stored, 'LIMIT', 0, 1)
    return {1, stored, found[1] or ''}
  end
end

if ARGV[2] == '1' then
  local holders = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[3], '+inf')
  if #holders > 0 then
    local prefix = ARGV[4] .. '\n'
    local mine = false
    for _, member in ipairs(holders) do
      if ARGV[4] ~= '' and string.sub(member, 1, #prefix) == prefix then mine = true end
    end
    if not mine then return {2} end
  end
end

local over, wait = 0, 0
local room_is_new = nil
local marker_window = nil
for i = 1, #KEYS - 8 do
  local amount = ARGV[7 + 3 * i - 2]
  local limit = tonumber(ARGV[7 + 3 * i - 1])
  local window = tonumber(ARGV[7 + 3 * i])
  if amount == 'new' then
    if room_is_new == nil then room_is_new = redis.call('EXISTS', KEYS[4], KEYS[5]) == 0 end
    amount = room_is_new and 1 or 0
    if room_is_new then marker_window = window end
  else
    amount = tonumber(amount)
  end
  if amount > 0 then
    local key = KEYS[8 + i]
    local total = redis.call('INCRBY', key, amount)
    redis.call('EXPIRE', key, window, 'NX')
    if over == 0 and total > limit then
      over = i
      wait = redis.call('TTL', key)
    end
  end
end
if over > 0 then return {3, over, wait} end
if marker_window then redis.call('SET', KEYS[5], '1', 'EX', marker_window) end
if ARGV[5] ~= '' then
  take_part(KEYS[6], KEYS[7], KEYS[8], ARGV[6], ARGV[5], math.floor(tonumber(ARGV[3])), tonumber(ARGV[7]))
end
return {0}
