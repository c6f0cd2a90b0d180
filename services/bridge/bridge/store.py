"""The bridge's writes to Redis: one Lua call per polled batch, applying its records in order,
so that each record's history, de-duplication and live publish happen together or not at
all, and a replay changes nothing."""

from chat_common.lua import lua_source
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

# The scripts (lua/): apply.lua, the apply of one record, is put before each script that runs it.
# A polled batch in one call, in order: what the bridge runs.
BATCH_SCRIPT = lua_source("bridge/apply.lua", "bridge/batch.lua")
# One message (the fan-out stage of the benchmark publishes with it, bench/loadgen-go/redis.go).
APPLY_SCRIPT = lua_source("bridge/apply.lua", "bridge/message.lua")

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
