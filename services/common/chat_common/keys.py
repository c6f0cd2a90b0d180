"""The Redis key map: every key and live channel name the services use, made here.

Two layouts, one map (ARCHITECTURE.md, *Redis layout*):

- **single** (the default, ``REDIS_MODE=single``): one Redis; the names are the plain
  ``chat:room:<room>:history`` ones, and live events go to the room's pub/sub channel
  ``<room>``, which a flask_sse publisher reaches too.
- **cluster** (``REDIS_MODE=cluster``): Redis Cluster. Every key that one Kafka partition's
  apply touches carries that partition's hash tag ``{p<n>}`` (a room's keys, the partition's
  state, its directory sets, the budgets a request to one of its rooms spends), so one
  partition's Lua apply is still one atomic call on one shard, and shards own partitions.
  A room's partition is the producer's (murmur2 of the room, modulo the topic's partition
  count, which every service is given: ``KAFKA_TOPIC_PARTITIONS``). Live events go by
  ``SPUBLISH`` to the shard channel ``chat:{p<n>}:live:<room>``, in the slot of its room's
  keys, so the apply script may publish it. Keys with a tag of their own: a private room's
  two hashes (``{<room>}``: its membership script), the private rooms' ready mark and an
  address's open streams (one key each per call).

What cluster mode costs in the map: an address's budgets are spent under its own tag
(``address_budget_key``) in a call of their own after its room's checks, so a request costs
two calls rather than one; the per-name budgets and the new-room count, spent with the room's
checks, still count per partition of the rooms they are spent on; and the directory reads
``P`` sets of each kind rather than one.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from hashlib import blake2b
from typing import Protocol

from kafka.partitioner.default import murmur2

SINGLE, CLUSTER = "single", "cluster"
MODES = (SINGLE, CLUSTER)


@dataclass(frozen=True)
class Layout:
    cluster: bool = False
    partitions: int = 1  # the topic's partition count (cluster mode places keys by it)


_layout = Layout()


def configure(mode: str, partitions: int) -> None:
    """Set the process's layout, once at start, before any key is made (each app factory)."""
    global _layout
    if mode not in MODES:
        raise ValueError(f"REDIS_MODE must be one of {', '.join(MODES)}, got {mode!r}")
    if partitions < 1:
        raise ValueError(f"the topic's partition count must be positive, got {partitions}")
    _layout = Layout(cluster=mode == CLUSTER, partitions=partitions)
    _room_prefix.cache_clear()


def layout() -> Layout:
    return _layout


def cluster() -> bool:
    return _layout.cluster


def room_partition(room: str, partitions: int) -> int:
    """The Kafka partition of a room: the producer's default (murmur2) partitioner."""
    hashed: int = murmur2(room.encode())
    return (hashed & 0x7FFFFFFF) % partitions


def tag(partition: int) -> str:
    """The hash tag of a partition's keys: Redis Cluster places a key by what is in its first braces."""
    return f"{{p{partition}}}"


@lru_cache(maxsize=65_536)  # murmur2 in Python costs about 2 µs a room; a room's keys are made often
def _room_prefix(room: str) -> str:
    return f"chat:{tag(room_partition(room, _layout.partitions))}:" if _layout.cluster else "chat:"


def _partition_prefix(partition: int) -> str:
    return f"chat:{tag(partition)}:" if _layout.cluster else "chat:"


# -- a room's keys -----------------------------------------------------------------------


def room_key(room: str, suffix: str) -> str:
    """``chat:room:<room>:<suffix>``, in the slot of the room's partition in cluster mode."""
    return f"{_room_prefix(room)}room:{room}:{suffix}"


def room_key_pattern(suffix: str) -> str:
    """A SCAN pattern matching every room's ``suffix`` key."""
    return f"chat:{{p*}}:room:*:{suffix}" if _layout.cluster else f"chat:room:*:{suffix}"


def room_of_key(key: str) -> str:
    """The room a room's key names (``room_key``'s inverse)."""
    return key.split(":")[3 if _layout.cluster else 2]


def placeholder(room: str) -> str:
    """A key a script is given and does not use (an absent client_id, name): in the room's slot,
    since Redis Cluster checks every key of a call."""
    return f"{_room_prefix(room)}none" if _layout.cluster else ""


def budget_key(scope: str, who: str, room: str | None = None) -> str:
    """A fixed-window counter (``chat:ratelimit:<scope>:<who>``); spent together with ``room``'s
    keys (one call), it is in that room's slot in cluster mode."""
    prefix = _room_prefix(room) if room is not None else "chat:"
    return f"{prefix}ratelimit:{scope}:{who}"


def address_budget_key(scope: str, address: str) -> str:
    """A client address's fixed-window counter: ``budget_key``'s name on one node; in cluster
    mode under the address's own tag ``{a<digest>}`` (spent in a call of its own), so one
    limit holds across the rooms of every partition."""
    if not _layout.cluster:
        return budget_key(scope, address)
    return f"chat:{{a{blake2b(address.encode(), digest_size=8).hexdigest()}}}:ratelimit:{scope}:{address}"


def channel(room: str) -> str:
    """The room's live channel: flask-sse's (the room) on one node; a shard channel in the
    slot of the room's keys in cluster mode."""
    return f"{_room_prefix(room)}live:{room}" if _layout.cluster else room


def room_of_channel(name: str) -> str:
    """The room of a live channel (``channel``'s inverse)."""
    return name.split(":live:", 1)[1] if _layout.cluster else name


# -- a partition's keys ------------------------------------------------------------------


def state_key(partition: int) -> str:
    """The hash of partition state (``ready:<p>``, ``floor:<p>``, ``last:<p>``, ``indexed:<p>``,
    ``partitions``): one for all partitions on one node, one per partition in cluster mode."""
    return f"{_partition_prefix(partition)}state"


def commit_mark_key(partition: int) -> str:
    """Cluster mode: a string the bridge sets on the partition's primary right before its
    ``WAIT`` (bridge/replicas.py), so the WAIT covers every write made before it (WAIT counts
    the writes of its own connection); holds the time (epoch ms) it was last set."""
    return f"{_partition_prefix(partition)}commit-mark"


def state_keys() -> list[str]:
    """Every state hash (one on one node)."""
    return [state_key(p) for p in range(_layout.partitions)] if _layout.cluster else [state_key(0)]


def active_rooms_key(partition: int) -> str:
    return f"{_partition_prefix(partition)}rooms:active"


def present_rooms_key(partition: int) -> str:
    return f"{_partition_prefix(partition)}rooms:present"


def rooms_by_addresses_key(partition: int) -> str:
    return f"{_partition_prefix(partition)}rooms:addresses"


def rooms_took_part_key(partition: int) -> str:
    return f"{_partition_prefix(partition)}rooms:took-part"


def partition_of(room: str) -> int:
    """The partition whose keys hold ``room``'s directory entries (0 on one node: one set)."""
    return room_partition(room, _layout.partitions) if _layout.cluster else 0


def directory_partitions() -> range:
    """The partitions whose directory sets a directory read covers (one set on one node)."""
    return range(_layout.partitions if _layout.cluster else 1)


# -- keys with a tag of their own ----------------------------------------------------------


def private_room_key(room: str) -> str:
    return f"chat:private:{{{room}}}" if _layout.cluster else f"chat:private:{room}"


def private_members_key(room: str) -> str:
    return private_room_key(room) + ":members"


# -- live publishing -----------------------------------------------------------------------


class Publisher(Protocol):
    def publish(self, channel: str, message: str) -> object: ...

    def spublish(self, shard_channel: str, message: str) -> object: ...


def publish(redis: Publisher, room_channel: str, payload: str) -> None:
    """Publish a live event on a room's channel: ``SPUBLISH`` in cluster mode (to the shard
    that holds the room; ``PUBLISH`` there would reach every node of the cluster)."""
    send: Callable[[str, str], object] = redis.spublish if _layout.cluster else redis.publish
    send(room_channel, payload)


def script(source: str) -> str:
    """A Lua script as this layout runs it: its live publishes are ``SPUBLISH`` in cluster mode."""
    if not _layout.cluster:
        return source
    return source.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',")
