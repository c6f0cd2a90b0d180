"""The bridge's writes to Redis: one Lua script per message, so that history, de-duplication
and the live publish happen together or not at all, and a replay changes nothing."""

from chat_common.messages import (
    ACTIVE_ROOMS_KEY, STATE_KEY, Tombstone, channel, client_id_key, deleted_key, deletes_key, history_key, live_payload,
    meta_key, offsets_key, pack_offsets,
)

# KEYS: history, meta, state, client_id key, offset index (bench/loadgen-go/redis.go calls it as well)
# ARGV: offset, message json, live payload, channel, history max, partition, publish?, has client_id?, ttl,
#       the offset as an index entry
# Returns -1 if Redis lost the partition's history (rebuild first), 0 if already applied,
# 2 if the client_id was stored before, 1 once written.
# The state's last:<partition>, the newest offset applied in the partition, is every room's
# position there for readers: each later message of any of its rooms has a greater id.
APPLY_SCRIPT = """
if redis.call('HEXISTS', KEYS[3], 'ready:' .. ARGV[6]) == 0 then return -1 end
local offset = tonumber(ARGV[1])
if offset > tonumber(redis.call('HGET', KEYS[3], 'last:' .. ARGV[6]) or '-1') then
  redis.call('HSET', KEYS[3], 'last:' .. ARGV[6], ARGV[1])
end
local last = tonumber(redis.call('HGET', KEYS[2], 'last') or '-1')
if offset <= last then return 0 end
redis.call('HSET', KEYS[2], 'last', ARGV[1])
if ARGV[8] == '1' then
  if not redis.call('SET', KEYS[4], ARGV[2], 'NX', 'EX', tonumber(ARGV[9])) then return 2 end
end
redis.call('ZADD', KEYS[1], offset, ARGV[2])
-- the room's offset index (index.py): from indexed:<partition> on, the live path appends; increasing, as last
local indexed = redis.call('HGET', KEYS[3], 'indexed:' .. ARGV[6])
if indexed and offset >= tonumber(indexed) then redis.call('APPEND', KEYS[5], ARGV[10]) end
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[5])
if excess > 0 then
  local trimmed = redis.call('ZRANGE', KEYS[1], excess - 1, excess - 1, 'WITHSCORES')
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
  redis.call('HSET', KEYS[2], 'floor', trimmed[2])
end
if ARGV[7] == '1' then redis.call('PUBLISH', ARGV[4], ARGV[3]) end
return 1
"""

# -- tombstones (a message taken back) ---------------------------------------------------
# KEYS: history, meta, state, deleted set, deletes (tombstone id -> deleted id)
# ARGV: tombstone offset, deleted id, live payload, channel, partition, publish?
# The same outcomes as APPLY_SCRIPT, the same per-room `last` and partition `last:<p>`, so
# that a tombstone is applied once and in its place in the room's order, and readers'
# positions count it. The message leaves the history window; the deleted id joins the
# room's deleted set (read by Kafka scrollback) and, keyed by the tombstone's id, the
# room's deletes (read by a resume from before it), which keep what lies above the room's
# floor. A tombstone is never in the room's offset index: it is no message. Returns 2 for
# a second tombstone of one message (nothing to tell readers).
DELETE_SCRIPT = """
if redis.call('HEXISTS', KEYS[3], 'ready:' .. ARGV[5]) == 0 then return -1 end
local offset = tonumber(ARGV[1])
if offset > tonumber(redis.call('HGET', KEYS[3], 'last:' .. ARGV[5]) or '-1') then
  redis.call('HSET', KEYS[3], 'last:' .. ARGV[5], ARGV[1])
end
local last = tonumber(redis.call('HGET', KEYS[2], 'last') or '-1')
if offset <= last then return 0 end
redis.call('HSET', KEYS[2], 'last', ARGV[1])
redis.call('SADD', KEYS[4], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[2])
if redis.call('ZSCORE', KEYS[5], ARGV[2]) then return 2 end
redis.call('ZADD', KEYS[5], offset, ARGV[2])
local floor = redis.call('HGET', KEYS[2], 'floor')
if floor then redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', floor) end
if ARGV[6] == '1' then redis.call('PUBLISH', ARGV[4], ARGV[3]) end
return 1
"""

NOT_READY, REPLAYED, WRITTEN, DUPLICATE = -1, 0, 1, 2


class Store:
    def __init__(self, redis, history_max, client_id_ttl_s):
        self.redis = redis
        self.history_max = history_max
        self.client_id_ttl_s = client_id_ttl_s
        self._apply = redis.register_script(APPLY_SCRIPT)
        self._delete = redis.register_script(DELETE_SCRIPT)

    def apply(self, items):
        """Apply ``(partition, message or tombstone, publish)`` items in order, in one
        round trip; return one outcome per item."""
        pipe = self.redis.pipeline(transaction=False)
        newest = {}  # room -> newest message ts in this batch, for the room directory
        for partition, message, publish in items:
            if isinstance(message, Tombstone):
                self._apply_tombstone(pipe, partition, message, publish)
                continue
            newest[message.room] = max(message.ts, newest.get(message.room, 0))
            data = message.to_json()
            cid = message.client_id
            self._apply(
                keys=[history_key(message.room), meta_key(message.room), STATE_KEY,
                      client_id_key(message.room, cid or "-"), offsets_key(message.room)],
                args=[message.id, data, live_payload(data, "message", message.id), channel(message.room),
                      self.history_max, partition, int(publish), int(cid is not None), self.client_id_ttl_s,
                      pack_offsets([int(message.id)])],
                client=pipe,
            )
        # -- the room directory (stream/directory.py): only ever later, replays change nothing
        if newest:
            pipe.zadd(ACTIVE_ROOMS_KEY, newest, gt=True)
        results = pipe.execute()
        return [int(result) for result in results[: len(items)]]

    def _apply_tombstone(self, pipe, partition, tombstone, publish):
        room = tombstone.room
        self._delete(
            keys=[history_key(room), meta_key(room), STATE_KEY, deleted_key(room), deletes_key(room)],
            args=[tombstone.id, tombstone.target, live_payload(tombstone.event_data(), "delete", tombstone.id),
                  channel(room), partition, int(publish)],
            client=pipe,
        )

    def unready_partitions(self, partitions):
        """The partitions whose history Redis does not hold (Redis new or restarted empty)."""
        partitions = sorted(partitions)
        if not partitions:
            return []
        flags = self.redis.hmget(STATE_KEY, [f"ready:{p}" for p in partitions])
        return [p for p, flag in zip(partitions, flags) if flag is None]

    def mark_rebuilding(self, partition, floor, partitions):
        """From now on the partition is written again; ids at or below ``floor`` are gone,
        so a client resuming from one of them gets a reset. ``partitions``, the topic's
        partition count, tells readers which partition holds a room. The offset index
        holds the partition from ``floor + 1`` on (index.py fills in what is older)."""
        self.redis.hset(
            STATE_KEY, mapping={"partitions": partitions, f"floor:{partition}": floor, f"ready:{partition}": 1,
                                f"indexed:{partition}": floor + 1}
        )
