-- A library for the bridge's scripts (batch.lua, message.lua): the apply of one record. Its
-- text is put before theirs (chat_common.lua.lua_source), so they can call these functions.
--
-- `room` names a room's keys: history, meta, deletes, deleted, offsets, cid (the record's
-- client_id key), changes, edits, reactions; a benchmark room may lack deletes, deleted and the
-- last three. `rec` is the record: offset
-- (decimal), partition, publish ('1': live), keep ('0': read again by a rebuild and older than
-- the idle TTL, so its room's window would have expired by now), channel, payload (live).
-- `bounds`: max (messages), max_bytes (of stored JSON), cid_ttl and idle_ttl (seconds; 0: no expiry).
--
-- Each apply returns -1 if Redis lost the partition's history (rebuild first), 0 if the record
-- was applied already, 2 if it repeats what was stored (a client_id stored before; a second
-- tombstone of one message; an edit or reaction of a deleted message, a reaction already there
-- or already gone), 1 once written.
-- The state's last:<partition>, the newest offset applied in the partition, is every room's
-- position there for readers: each later message of any of its rooms has a greater id.
--
-- Idle rooms: history, meta and deletes expire idle_ttl after the room's last apply, changes
-- idle_ttl after its last change (one EXPIRE a change, none a message); the
-- deleted set, the edits and reactions hashes and the offset index stay (scrollback needs them;
-- the indexer trims the last three to what the log retains, trim.lua). A room without meta is read
-- with floor = last:<partition>; when it gets a record again, that is its floor.
--
-- `call` is what one script call shares (new_call ... finish): the state hash, the bounds, each
-- partition's ready, last and indexed (read once, last written back once), the rooms whose
-- window was written (their TTLs set once) and each room's live events (one PUBLISH a room). A script call is atomic, so nothing can read between
-- a record's writes and the call's end: each record is applied as if on its own. Measured on a
-- batch of 200 records in 1,000 rooms: 17.8 Redis commands per record before, 11 with this.

local OUTSIDE = 3  -- advance's answer for a record to apply outside the window (rec.keep '0')
-- Events of a room in one PUBLISH at most: as many as a stream hands its readers at once
-- (stream/hub.py MAX_BATCH), so a burst in one room reaches them as it did one by one.
local LIVE_EVENTS_MAX = 64

local function new_call(state, bounds)
  return {state = state, bounds = bounds, partitions = {}, touched = {}, live = {}, channels = {}}
end

-- A live event, published at the call's end with the other events of its room.
local function live(call, rec)
  local events = call.live[rec.channel]
  if events == nil then
    events = {}
    call.live[rec.channel] = events
    call.channels[#call.channels + 1] = rec.channel
  end
  events[#events + 1] = rec.payload
end

-- A partition's ready, last (newest offset applied, -1: none) and indexed, read once per call.
local function partition_of(call, number)
  local part = call.partitions[number]
  if part == nil then
    local fields = redis.call('HMGET', call.state, 'ready:' .. number, 'last:' .. number, 'indexed:' .. number)
    part = {ready = fields[1] ~= false, last = tonumber(fields[2] or '-1'), indexed = tonumber(fields[3] or '')}
    call.partitions[number] = part
  end
  return part
end

-- The call's end: one PUBLISH per room, of its one event or a JSON array of its events in
-- order (LIVE_EVENTS_MAX at most) (a subscriber reads either; stream/hub.py); each partition's last:<partition> written
-- back; each written room's window living idle_ttl from now.
local function finish(call)
  for _, name in ipairs(call.channels) do
    local events = call.live[name]
    if #events == 1 then
      redis.call('PUBLISH', name, events[1])
    else
      for first = 1, #events, LIVE_EVENTS_MAX do
        local last = math.min(first + LIVE_EVENTS_MAX - 1, #events)
        redis.call('PUBLISH', name, '[' .. table.concat(events, ',', first, last) .. ']')
      end
    end
  end
  for number, part in pairs(call.partitions) do
    if part.moved then redis.call('HSET', call.state, 'last:' .. number, part.moved) end
  end
  if call.bounds.idle_ttl <= 0 then return end
  for _, room in pairs(call.touched) do
    redis.call('EXPIRE', room.history, call.bounds.idle_ttl)
    redis.call('EXPIRE', room.meta, call.bounds.idle_ttl)
    if room.deletes then redis.call('EXPIRE', room.deletes, call.bounds.idle_ttl) end
  end
end

-- The room's window was written: its TTLs are set at the call's end.
local function touch(call, room)
  call.touched[room.meta] = room
end

-- Whether the room had records before (its window may have expired since): its offset index
-- or its deleted set, which never expire.
local function traced(room)
  return redis.call('EXISTS', room.offsets) == 1 or (room.deleted ~= nil and redis.call('EXISTS', room.deleted) == 1)
end

-- What every record does first: -1 if Redis lost the partition's history; last:<partition>
-- moved up to the record; 0 if the room applied it already; OUTSIDE for a record that only
-- goes to the keys that never expire; else nil (go on). room.fields: what the room's meta gets
-- (its last moved to the record; written with the rest of the record's meta by the caller);
-- room.bytes: meta's bytes as read.
local function advance(call, room, rec)
  local part = partition_of(call, rec.partition)
  if not part.ready then return -1 end
  local offset = tonumber(rec.offset)
  local applied = part.last
  if offset > applied then part.last, part.moved = offset, rec.offset end
  local meta = redis.call('HMGET', room.meta, 'last', 'bytes')
  local last = meta[1]
  room.bytes = tonumber(meta[2] or '')
  room.fields = {'last', rec.offset}
  if last then
    if offset <= tonumber(last) then return 0 end
  elseif offset <= applied and traced(room) then
    return 0  -- applied before, and the room's window expired since
  elseif rec.keep == '0' then
    return OUTSIDE
  elseif applied >= 0 and traced(room) then
    -- the window expired: readers took last:<partition> as its floor meanwhile, and it stays so
    room.fields = {'floor', applied, 'last', rec.offset}
  end
  return nil
end

-- The bytes of JSON the window holds (meta's `bytes`; summed once for a window stored without it).
local function window_bytes(room)
  if room.bytes then return room.bytes end
  local size = 0
  for _, member in ipairs(redis.call('ZRANGE', room.history, 0, -1)) do size = size + #member end
  return size
end

-- The room's offset index (index.py): from indexed:<partition> on, the live path appends;
-- increasing, as last:<partition>.
local function index_message(call, room, rec)
  local indexed = partition_of(call, rec.partition).indexed
  local offset = tonumber(rec.offset)
  if indexed and offset >= indexed then redis.call('APPEND', room.offsets, struct.pack('>I8', offset)) end
end

local function apply_message(call, room, rec, data, has_cid)
  local bounds = call.bounds
  local done = advance(call, room, rec)
  if done and done ~= OUTSIDE then return done end
  -- the client_id key holds the id first stored with it (readers take the message by that id)
  if has_cid == '1' and not redis.call('SET', room.cid, rec.offset, 'NX', 'EX', bounds.cid_ttl) then
    if not done then
      redis.call('HSET', room.meta, unpack(room.fields))
      touch(call, room)
    end
    return 2
  end
  index_message(call, room, rec)
  if done == OUTSIDE then return 1 end
  local size = window_bytes(room) + #data
  redis.call('ZADD', room.history, tonumber(rec.offset), data)
  -- the oldest leave while either bound is passed
  local count, floor = redis.call('ZCARD', room.history), nil
  while count > bounds.max or size > bounds.max_bytes do
    local oldest = redis.call('ZPOPMIN', room.history)
    if #oldest == 0 then break end
    size, count, floor = size - #oldest[1], count - 1, oldest[2]
  end
  local fields = room.fields
  fields[#fields + 1], fields[#fields + 2] = 'bytes', size
  -- A new floor: ids at or below it may have left the window; the deletes at or below it are
  -- no longer needed (a resume from there gets a reset).
  if floor then
    fields[#fields + 1], fields[#fields + 2] = 'floor', floor
    if room.deletes then redis.call('ZREMRANGEBYSCORE', room.deletes, '-inf', floor) end
    if room.changes then redis.call('ZREMRANGEBYSCORE', room.changes, '-inf', floor) end
  end
  redis.call('HSET', room.meta, unpack(fields))
  touch(call, room)
  if rec.publish == '1' then live(call, rec) end
  return 1
end

-- A tombstone (a message taken back): the same per-room `last` and partition `last:<p>` as
-- messages, so that it is applied once and in its place in the room's order, and readers'
-- positions count it. The message leaves the history window; the deleted id joins the
-- room's deleted set (read by Kafka scrollback) and, keyed by the tombstone's id, the
-- room's deletes (read by a resume from before it), which keep what lies above the room's
-- floor. A tombstone is never in the room's offset index: it is no message.
local function apply_tombstone(call, room, rec, target)
  local done = advance(call, room, rec)
  if done and done ~= OUTSIDE then return done end
  redis.call('SADD', room.deleted, target)
  if room.edits then redis.call('HDEL', room.edits, target) end  -- no read shows it again
  if room.reactions then redis.call('HDEL', room.reactions, target) end
  if done == OUTSIDE then return 1 end
  local fields = room.fields
  local gone = redis.call('ZRANGEBYSCORE', room.history, target, target)
  if #gone > 0 then
    local size = window_bytes(room)
    redis.call('ZREMRANGEBYSCORE', room.history, target, target)
    for _, member in ipairs(gone) do size = size - #member end
    fields[#fields + 1], fields[#fields + 2] = 'bytes', size
  end
  redis.call('HSET', room.meta, unpack(fields))
  touch(call, room)
  if redis.call('ZSCORE', room.deletes, target) then return 2 end
  redis.call('ZADD', room.deletes, tonumber(rec.offset), target)
  local floor = redis.call('HGET', room.meta, 'floor')
  if floor then redis.call('ZREMRANGEBYSCORE', room.deletes, '-inf', floor) end
  if rec.publish == '1' then live(call, rec) end
  return 1
end

-- The room's meta written (its last moved to the record) and the window's TTLs set, for a
-- record that changes nothing else in the window.
local function moved(call, room)
  redis.call('HSET', room.meta, unpack(room.fields))
  touch(call, room)
end

-- An edit or reaction taken into the window: keyed by its record's id in the room's changes
-- (read by a resume from before it; kept above the room's floor), and published live.
local function changed(call, room, rec, payload)
  moved(call, room)
  redis.call('ZADD', room.changes, tonumber(rec.offset), payload)
  if call.bounds.idle_ttl > 0 then redis.call('EXPIRE', room.changes, call.bounds.idle_ttl) end
  local floor = redis.call('HGET', room.meta, 'floor')
  if floor then redis.call('ZREMRANGEBYSCORE', room.changes, '-inf', floor) end
  if rec.publish == '1' then
    rec.payload = payload
    live(call, rec)
  end
end

-- An edit: the message's latest {"text", "edited_ts"} (`state`, JSON) in the room's edits
-- hash, which every read folds into the message. Applied in the room's order (advance), so the
-- latest edit wins; an edit of a deleted message changes nothing.
local function apply_edit(call, room, rec, target, state)
  local done = advance(call, room, rec)
  if done and done ~= OUTSIDE then return done end
  if redis.call('SISMEMBER', room.deleted, target) == 1 then
    if not done then moved(call, room) end
    return 2
  end
  redis.call('HSET', room.edits, target, state)
  if done == OUTSIDE then return 1 end
  changed(call, room, rec, rec.payload)
  return 1
end

-- The reactions as reads and events show them: per emoji its count and its first `shown` users.
local REACTION_USERS_SHOWN = 20  -- chat_common.messages.REACTION_USERS_SHOWN
local function shown(counts)
  local out = {}
  for emoji, users in pairs(counts) do
    local first = {}
    for i = 1, math.min(#users, REACTION_USERS_SHOWN) do first[i] = users[i] end
    out[emoji] = {count = #users, users = first}
  end
  return out
end

-- A reaction added ('+') or taken back ('-'): `change` is the sign, the emoji, a line feed and
-- the user. The message's reactions ({emoji: [users]}, JSON) are in the room's reactions hash;
-- the live event carries all of them after the change. One that is already there (or already
-- gone), or of a deleted message, changes nothing.
local function apply_reaction(call, room, rec, target, change)
  local done = advance(call, room, rec)
  if done and done ~= OUTSIDE then return done end
  local on = string.sub(change, 1, 1) == '+'
  local sep = string.find(change, '\n', 2, true)
  local emoji, user = string.sub(change, 2, sep - 1), string.sub(change, sep + 1)
  local stored = redis.call('HGET', room.reactions, target)
  local counts = stored and cjson.decode(stored) or {}
  local users = counts[emoji] or {}
  local at = nil
  for i, name in ipairs(users) do
    if name == user then at = i break end
  end
  if on == (at ~= nil) or redis.call('SISMEMBER', room.deleted, target) == 1 then
    if not done then moved(call, room) end
    return 2
  end
  if on then users[#users + 1] = user else table.remove(users, at) end
  if #users > 0 then counts[emoji] = users else counts[emoji] = nil end
  if next(counts) == nil then
    redis.call('HDEL', room.reactions, target)
  else
    redis.call('HSET', room.reactions, target, cjson.encode(counts))
  end
  if done == OUTSIDE then return 1 end
  local data = '{"id":"' .. target .. '","reactions":' .. cjson.encode(shown(counts)) .. '}'
  changed(call, room, rec, '{"data":' .. data .. ',"type":"reaction","id":"' .. rec.offset .. '"}')
  return 1
end
