"""The bridge's writes to Redis: one Lua call per polled batch, applying its records in order,
so that each record's history, de-duplication and live publish happen together or not at
all, and a replay changes nothing."""

from chat_common.messages import (
    ACTIVE_ROOMS_KEY,
    STATE_KEY,
    Tombstone,
    channel,
    client_id_key,
    deleted_key,
    deletes_key,
    history_key,
    live_payload,
    meta_key,
    offsets_key,
    pack_offsets,
)

# The apply of one record, as Lua functions that the scripts below share. Each returns -1 if
# Redis lost the partition's history (rebuild first), 0 if the record was applied already,
# 2 if it repeats what was stored (a client_id stored before; a second tombstone of one
# message), 1 once written.
# The state's last:<partition>, the newest offset applied in the partition, is every room's
# position there for readers: each later message of any of its rooms has a greater id.
APPLY_LUA = """
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
"""

# A polled batch in one call, in order: what the bridge runs.
# KEYS: state, the room directory, then 4 per record: history, meta, and for a message its
#       client_id key and offset index, for a tombstone the room's deleted set and deletes
# ARGV: history max, client_id ttl, then 11 per record: 'm' or 'd', offset,
#       partition, publish?, channel, live payload, room, ts, then for a message its json,
#       has client_id?, the offset as an index entry; for a tombstone the deleted id, '', ''
# Returns one outcome per record. The room directory gets each room's newest ts in the
# batch (only ever later, so replays change nothing).
BATCH_SCRIPT = APPLY_LUA + """
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
"""

# One message (the fan-out stage of the benchmark publishes with it, bench/loadgen-go/redis.go).
# KEYS: history, meta, state, client_id key, offset index
# ARGV: offset, message json, live payload, channel, history max, partition, publish?, has client_id?, ttl,
#       the offset as an index entry
APPLY_SCRIPT = APPLY_LUA + """
return apply_message(KEYS[3], KEYS[1], KEYS[2], KEYS[4], KEYS[5], ARGV[1], ARGV[6], ARGV[7], ARGV[4], ARGV[3],
                     ARGV[2], ARGV[8], ARGV[9], ARGV[5], ARGV[10])
"""

NOT_READY, REPLAYED, WRITTEN, DUPLICATE = -1, 0, 1, 2


class Store:
    def __init__(self, redis, history_max, client_id_ttl_s):
        self.redis = redis
        self.history_max = history_max
        self.client_id_ttl_s = client_id_ttl_s
        self._batch = redis.register_script(BATCH_SCRIPT)

    def apply(self, items):
        """Apply ``(partition, message or tombstone, publish)`` items in order, in one Lua
        call (one round trip, nothing of another client in between); return one outcome per
        item."""
        if not items:
            return []
        keys, args = [STATE_KEY, ACTIVE_ROOMS_KEY], [self.history_max, self.client_id_ttl_s]
        for partition, message, publish in items:
            room = message.room
            if isinstance(message, Tombstone):
                keys += [history_key(room), meta_key(room), deleted_key(room), deletes_key(room)]
                args += ["d", message.id, partition, int(publish), channel(room),
                         live_payload(message.event_data(), "delete", message.id), room, message.ts,
                         message.target, "", ""]
                continue
            data, cid = message.to_json(), message.client_id
            keys += [history_key(room), meta_key(room), client_id_key(room, cid or "-"), offsets_key(room)]
            args += ["m", message.id, partition, int(publish), channel(room), live_payload(data, "message", message.id),
                     room, message.ts, data, int(cid is not None), pack_offsets([int(message.id)])]
        return [int(outcome) for outcome in self._batch(keys, args)]

    def unready_partitions(self, partitions):
        """The partitions whose history Redis does not hold (Redis new or restarted empty)."""
        partitions = sorted(partitions)
        if not partitions:
            return []
        flags = self.redis.hmget(STATE_KEY, [f"ready:{p}" for p in partitions])
        return [p for p, flag in zip(partitions, flags, strict=True) if flag is None]

    def mark_rebuilding(self, partition, floor, partitions):
        """From now on the partition is written again; ids at or below ``floor`` are gone,
        so a client resuming from one of them gets a reset. ``partitions``, the topic's
        partition count, tells readers which partition holds a room. The offset index
        holds the partition from ``floor + 1`` on (index.py fills in what is older)."""
        self.redis.hset(
            STATE_KEY, mapping={"partitions": partitions, f"floor:{partition}": floor, f"ready:{partition}": 1,
                                f"indexed:{partition}": floor + 1}
        )
