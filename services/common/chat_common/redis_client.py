"""Redis clients as the configured mode wants them: one node, or Redis Cluster.

``configure`` sets the key map's layout (chat_common/keys.py) from the service's settings;
``connect`` returns a client for ``REDIS_URL``: ``redis.Redis``, or in cluster mode
``redis.RedisCluster`` seeded by that node (it learns the others, and follows a failover:
a command refused with MOVED, or whose node is gone, is sent again after the slots are read
anew). Both have the same commands; the cluster client routes each by its key's slot, and a
script or MULTI/EXEC whose keys are not in one slot is refused (CROSSSLOT), which the key map
prevents.
"""

from typing import cast

from redis import Redis, RedisCluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from chat_common import keys
from chat_common.config import CommonConfig


def configure(config: CommonConfig) -> None:
    keys.configure(config.redis_mode, config.kafka_topic_partitions)


def connect(url: str, fail_fast: bool = False, **options: object) -> Redis:
    """A client for ``url`` in the configured mode. The cluster client is typed as ``Redis``:
    it has the same command methods, which is all the services call. ``fail_fast`` (cluster
    mode): a command whose node does not answer fails after one more try, rather than
    retrying with backoff until a replica took over (redis-py's default: 10 tries), so a
    caller serving several shards (the bridge) goes on with the others meanwhile."""
    if keys.cluster():
        options.pop("db", None)  # a cluster has database 0 only
        if fail_fast:
            options["retry"] = Retry(NoBackoff(), 1)
        return cast(Redis, RedisCluster.from_url(url, **options))
    return Redis.from_url(url, **options)


def fullest_memory(redis: Redis) -> dict[str, int]:
    """``INFO memory`` of the node nearest its ``maxmemory``: the one node, or in cluster mode
    the primary that would refuse writes first (each primary has its own limit)."""
    if not keys.cluster():
        return _figures(cast(dict[str, object], redis.info("memory")))
    replies = cast(dict[str, dict[str, object]],
                   cast(RedisCluster, redis).info("memory", target_nodes=RedisCluster.PRIMARIES))
    return max(map(_figures, replies.values()),
               key=lambda m: m["used_memory"] / m["maxmemory"] if m["maxmemory"] else 0.0)


def _figures(memory: dict[str, object]) -> dict[str, int]:
    return {name: int(str(memory.get(name, 0))) for name in ("used_memory", "maxmemory")}
