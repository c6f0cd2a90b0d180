-- A library for the bridge's scripts (batch.lua, message.lua): the apply of one record. Its
-- text is put before theirs (chat_common.lua.lua_source), so they can call these functions.
-- Each returns -1 if Redis lost the partition's history (rebuild first), 0 if the record was
-- applied already, 2 if it repeats what was stored (a client_id stored before; a second
-- tombstone of one message), 1 once written.
-- The state's last:<partition>, the newest offset applied in the partition, is every room's
-- position there for readers: each later message of any of its rooms has a greater id.

-- What every record does first: -1 if Redis lost the partition's history; last:<partition>
-- moved up to the record; 0 if the room applied it already, else the room's last moved to
-- it and nil (go on).
local function advance(state, meta, offset_s, partition)
  if redis.call('HEXISTS', state, 'ready:' .. partition) == 0 then return -1 end
  local offset = tonumber(offset_s)
  if offset > tonumber(redis.call('HGET', state, 'last:' .. partition) or '-1') then
    redis.call('HSET', state, 'last:' .. partition, offset_s)
  end
  if offset <= tonumber(redis.call('HGET', meta, 'last') or '-1') then return 0 end
  redis.call('HSET', meta, 'last', offset_s)
  return nil
end

local function apply_message(state, history, meta, cid_key, offsets, offset_s, partition, publish, channel,
                             payload, data, has_cid, cid_ttl, history_max, index_entry)
  local done = advance(state, meta, offset_s, partition)
  if done then return done end
  local offset = tonumber(offset_s)
  if has_cid == '1' then
    if not redis.call('SET', cid_key, data, 'NX', 'EX', tonumber(cid_ttl)) then return 2 end
  end
  redis.call('ZADD', history, offset, data)
  -- the room's offset index (index.py): from indexed:<partition> on, the live path appends; increasing, as last
  local indexed = redis.call('HGET', state, 'indexed:' .. partition)
  if indexed and offset >= tonumber(indexed) then redis.call('APPEND', offsets, index_entry) end
  local excess = redis.call('ZCARD', history) - tonumber(history_max)
  if excess > 0 then
    local trimmed = redis.call('ZRANGE', history, excess - 1, excess - 1, 'WITHSCORES')
    redis.call('ZREMRANGEBYRANK', history, 0, excess - 1)
    redis.call('HSET', meta, 'floor', trimmed[2])
  end
  if publish == '1' then redis.call('PUBLISH', channel, payload) end
  return 1
end

-- A tombstone (a message taken back): the same per-room `last` and partition `last:<p>` as
-- messages, so that it is applied once and in its place in the room's order, and readers'
-- positions count it. The message leaves the history window; the deleted id joins the
-- room's deleted set (read by Kafka scrollback) and, keyed by the tombstone's id, the
-- room's deletes (read by a resume from before it), which keep what lies above the room's
-- floor. A tombstone is never in the room's offset index: it is no message.
local function apply_tombstone(state, history, meta, deleted, deletes, offset_s, partition, publish, channel,
                               payload, target)
  local done = advance(state, meta, offset_s, partition)
  if done then return done end
  local offset = tonumber(offset_s)
  redis.call('SADD', deleted, target)
  redis.call('ZREMRANGEBYSCORE', history, target, target)
  if redis.call('ZSCORE', deletes, target) then return 2 end
  redis.call('ZADD', deletes, offset, target)
  local floor = redis.call('HGET', meta, 'floor')
  if floor then redis.call('ZREMRANGEBYSCORE', deletes, '-inf', floor) end
  if publish == '1' then redis.call('PUBLISH', channel, payload) end
  return 1
end
