"""Redis clients as the configured mode wants them: one node, or Redis Cluster.

``configure`` sets the key map's layout (chat_common/keys.py) from the service's settings;
``connect`` returns a client for ``REDIS_URL``: ``redis.Redis``, or in cluster mode
``redis.RedisCluster`` seeded by that node (it learns the others, and follows a failover:
a command refused with MOVED, or whose node is gone, is sent again after the slots are read
anew). Both have the same commands; the cluster client routes each by its key's slot, and a
script or MULTI/EXEC whose keys are not in one slot is refused (CROSSSLOT), which the key map
prevents.
"""

import logging
from typing import cast

from redis import BlockingConnectionPool, Redis, RedisCluster
from redis.backoff import NoBackoff
from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError
from redis.retry import Retry

from chat_common import keys
from chat_common.config import CommonConfig

log = logging.getLogger(__name__)


def configure(config: CommonConfig) -> None:
    keys.configure(config.redis_mode, config.kafka_topic_partitions)


class TopicPartitions:
    """Cluster mode places each room's keys by its partition, computed from
    ``KAFKA_TOPIC_PARTITIONS``: a value other than the topic's own count puts a room's keys
    and its partition's state in different slots, which Redis refuses (CROSSSLOT) on the
    first apply or admission. So once the topic is known, ingest and the bridge compare the
    two and stay unready on a mismatch, logging one error with both numbers (again only
    after it was resolved). One node places no key by partition: it is not checked."""

    def __init__(self, config: CommonConfig) -> None:
        self.configured = config.kafka_topic_partitions
        self.topic = config.kafka_topic
        self.agree: bool | None = None  # not known until the topic is (None); single mode: always True
        if not keys.cluster():
            self.agree = True

    def check(self, actual: int) -> bool:
        """Whether the topic's ``actual`` partition count is the configured one."""
        if not keys.cluster():
            return True
        agree = actual == self.configured
        if not agree and self.agree is not False:
            log.error(f"KAFKA_TOPIC_PARTITIONS is {self.configured} but the topic {self.topic} has {actual} "
                      f"partitions: in REDIS_MODE=cluster every room's keys are placed by its partition, "
                      f"so this service stays unready until the setting is {actual}",
                      extra={"configured": self.configured, "topic_partitions": actual, "topic": self.topic})
        self.agree = agree
        return agree


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


class BoundedPool(BlockingConnectionPool):
    """redis-py's bounded pool (at most ``max_connections``; a caller finding them all busy
    waits ``timeout`` seconds for one), failing as ``MaxConnectionsError`` once the wait is
    over. Its parent raises a plain ConnectionError, which the cluster client takes for a
    node that does not answer: it drops the node's idle connections, reads the slots again
    and retries, so a burst would cost every other caller of that node its connection too.
    ``MaxConnectionsError`` is a ConnectionError as well: callers catching that see no change."""

    def get_connection(self, *args: object, **options: object) -> Connection:
        try:
            return cast(Connection, super().get_connection())  # type: ignore[no-untyped-call]
        except MaxConnectionsError:
            raise
        except RedisConnectionError as error:
            if error.args != ("No connection available.",):  # the parent's wait ran out; else a connect failed
                raise
            raise MaxConnectionsError(f"no Redis connection free within {self.timeout} s "
                                      f"(at most {self.max_connections})") from error


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
