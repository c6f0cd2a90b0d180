"""The bridge's writes to Redis: one Lua call per polled batch, applying its records in order,
so that each record's history, de-duplication and live publish happen together or not at
all, and a replay changes nothing."""

import time
from collections.abc import Iterable, Sequence

from redis import Redis
from redis.exceptions import RedisError

from chat_common import keys
from chat_common.lua import lua_source
from chat_common.messages import (
    REACTIONS_PER_MESSAGE_MAX,
    Edit,
    Reaction,
    Record,
    Tombstone,
    changes_key,
    channel,
    client_id_key,
    deleted_key,
    deletes_key,
    edits_key,
    history_key,
    live_payload,
    meta_key,
    offsets_key,
    reactions_key,
)

# The scripts (lua/): apply.lua, the apply of one record, is put before each script that runs it.
# A polled batch in one call, in order: what the bridge runs.
BATCH_SCRIPT = lua_source("bridge/apply.lua", "bridge/batch.lua")
# One message (the fan-out stage of the benchmark publishes with it, bench/loadgen-go/redis.go).
APPLY_SCRIPT = lua_source("bridge/apply.lua", "bridge/message.lua")

NOT_READY, REPLAYED, WRITTEN, DUPLICATE = -1, 0, 1, 2
UNAVAILABLE = -2  # cluster mode: the partition's shard did not answer (the bridge reads it again)

# What the bridge applies: (partition, the record, publish it live?)
Item = tuple[int, Record, bool]


class Store:
    def __init__(self, redis: Redis, history_max: int, history_max_bytes: int, client_id_ttl_s: int,
                 room_idle_ttl_s: int, reactions_max: int = REACTIONS_PER_MESSAGE_MAX) -> None:
        self.redis = redis
        self.history_max = history_max
        self.history_max_bytes = history_max_bytes
        self.client_id_ttl_s = client_id_ttl_s
        self.room_idle_ttl_s = room_idle_ttl_s
        self.reactions_max = reactions_max  # (user, emoji) reactions a message holds at most
        self._batch_source = keys.script(BATCH_SCRIPT)
        self._batch = redis.register_script(self._batch_source)

    def apply(self, items: Sequence[Item], now_ms: int | None = None) -> list[int]:
        """Apply ``(partition, record, publish)`` items in order, in one Lua
        call (one round trip, nothing of another client in between); return one outcome per
        item. A record read again by a rebuild (not published) that is older than the idle
        TTL (``now_ms``: now, by default) goes only to the keys that never expire: its room's
        window would have expired by now, so a rebuild holds no more than Redis did."""
        if not items:
            return []
        if keys.cluster() and len({partition for partition, _, _ in items}) > 1:
            # One call per partition: its keys are one shard's (chat_common/keys.py). Each
            # partition's records keep their order; the outcomes go back to the items' order.
            # A shard that does not answer fails its partitions only (UNAVAILABLE), so the
            # others' rooms go on while its replica takes over; none answering raises.
            outcomes: dict[int, int] = {}
            failed: RedisError | None = None
            for partition in sorted({partition for partition, _, _ in items}):
                mine = [i for i, item in enumerate(items) if item[0] == partition]
                try:
                    results = self.apply([items[i] for i in mine], now_ms)
                except RedisError as error:
                    failed, results = error, [UNAVAILABLE] * len(mine)
                for i, outcome in zip(mine, results, strict=True):
                    outcomes[i] = outcome
            if failed is not None and all(outcome == UNAVAILABLE for outcome in outcomes.values()):
                raise failed
            return [outcomes[i] for i in range(len(items))]
        if now_ms is None:
            now_ms = int(time.time() * 1000)
        idle_since_ms = now_ms - self.room_idle_ttl_s * 1000 if self.room_idle_ttl_s > 0 else None
        first = items[0][0]  # one partition in cluster mode; one state hash for all on one node
        names = [keys.state_key(first), keys.active_rooms_key(first)]
        args: list[str | int] = [self.history_max, self.history_max_bytes, self.client_id_ttl_s, self.room_idle_ttl_s,
                                 self.reactions_max]
        for partition, message, publish in items:
            room = message.room
            keep = publish or idle_since_ms is None or message.ts >= idle_since_ms
            room_keys = [history_key(room), meta_key(room), deletes_key(room), deleted_key(room), offsets_key(room)]
            changes = [changes_key(room), edits_key(room), reactions_key(room)]
            assert message.id is not None  # parse_record gives every record its offset as id
            head: list[str | int] = [message.id, partition, int(publish), int(keep), channel(room)]
            if isinstance(message, Tombstone):
                names += [*room_keys, client_id_key(room, "-"), *changes]
                args += ["d", *head, live_payload(message.event_data(), "delete", message.id), room, message.ts,
                         message.target, ""]
            elif isinstance(message, Edit):
                names += [*room_keys, client_id_key(room, "-"), *changes]
                args += ["e", *head, live_payload(message.event_data(), "edit", message.id), room, message.ts,
                         message.target, message.stored()]
            elif isinstance(message, Reaction):  # its live event, with the counts after it, is made in Lua
                names += [*room_keys, client_id_key(room, "-"), *changes]
                args += ["r", *head, "", room, message.ts, message.target,
                         ("+" if message.on else "-") + message.emoji + "\n" + message.user]
            else:
                data, cid = message.to_json(), message.client_id
                names += [*room_keys, client_id_key(room, cid or "-"), *changes]
                args += ["m", *head, live_payload(data, "message", message.id), room, message.ts, data,
                         int(cid is not None)]
        return [int(outcome) for outcome in self._batch(names, args)]

    def warm(self) -> None:
        """Load the batch script into Redis now: the first batch after a start would otherwise
        pay a refused EVALSHA, then the script's text and its compilation."""
        self.redis.script_load(self._batch_source)

    def unready_partitions(self, partitions: Iterable[int]) -> list[int]:
        """The partitions whose history Redis does not hold (Redis new or restarted empty)."""
        ordered = sorted(partitions)
        if not ordered:
            return []
        if not keys.cluster():
            flags = self.redis.hmget(keys.state_key(0), [f"ready:{p}" for p in ordered])
            return [p for p, flag in zip(ordered, flags, strict=True) if flag is None]
        unready = []
        for p in ordered:  # one shard not answering leaves the others' partitions checked
            try:
                if self.redis.hget(keys.state_key(p), f"ready:{p}") is None:
                    unready.append(p)
            except RedisError:
                continue  # unknown for now: checked again in a moment
        return unready

    def mark_rebuilding(self, partition: int, floor: int, partitions: int) -> None:
        """From now on the partition is written again; ids at or below ``floor`` are gone,
        so a client resuming from one of them gets a reset. ``partitions``, the topic's
        partition count, tells readers which partition holds a room. The offset index
        holds the partition from ``floor + 1`` on (index.py fills in what is older)."""
        self.redis.hset(
            keys.state_key(partition), mapping={"partitions": partitions, f"floor:{partition}": floor,
                                                f"ready:{partition}": 1, f"indexed:{partition}": floor + 1}
        )
