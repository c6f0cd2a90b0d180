"""Cluster mode: a partition's offsets are committed only once a replica holds its applies.

Redis copies a primary's writes to its replicas asynchronously: a primary killed right after
an apply loses what its replica had not received yet, and the replica takes over without it.
Had the bridge committed those records' offsets, nothing would ever apply them again. So
before committing, the bridge asks each primary that took applies since the last commit to
wait until one replica holds them (``WAIT 1 <timeout>``); a partition whose primary answers
fewer is not committed this time (its records are read again from the last commit if its
primary changes meanwhile, consumer.py; the apply is idempotent).

``WAIT`` counts the writes of the connection it is sent on (Redis keeps each client's
replication offset): the applies ran on whichever connection of the node's pool was free,
and a WAIT on another one answers at once, its replica paused or not (measured: ``1`` in
0.1 ms with the replica stopped by SIGSTOP; ``0`` after the timeout on the connection that
wrote). So each WAIT follows a write of its own on the same connection, the partition's
commit mark (keys.commit_mark_key): Redis replicates in order, so a replica holding the mark
holds every apply made before it. One WAIT per primary, all sent before any answer is read:
a commit waits as long as the slowest shard, not their sum.

A primary of which the cluster knows no replica at all (in whatever state): nothing could
take over from it either (its loss is a shard lost whole, rebuilt from Kafka), so waiting
would only stall; its partitions are committed as on one node, logged once and counted
(``chat_bridge_commits_unreplicated_total``). A replica that is known but does not answer in
time (paused, failed, resyncing) withholds the commit.
"""

import logging
import time
from collections.abc import Mapping
from typing import cast

from redis import Redis, RedisCluster
from redis.connection import Connection, ConnectionPool
from redis.exceptions import RedisError, SlotNotCoveredError

from bridge import metrics
from chat_common import keys

log = logging.getLogger(__name__)

REPLICAS_REQUIRED = 1  # a failover promotes one replica: one that holds the apply is enough
UNKNOWN = ""  # the primary of a slot the client's map has no node for (a node name is host:port)


class Replicas:
    def __init__(self, redis: Redis, wait_ms: int) -> None:
        self.cluster = cast(RedisCluster, redis)
        self.wait_ms = wait_ms
        self._alone: set[str] = set()  # primaries already logged as having no replica

    def primary_of(self, partition: int) -> str:
        """The primary (``host:port``) the client sends the partition's writes to, as it knows
        the slots now (it reads them again after a MOVED or a node that does not answer);
        ``UNKNOWN`` while its slot has none in the client's map (never confirmed)."""
        try:
            return str(self.cluster.get_node_from_key(keys.state_key(partition)).name)
        except SlotNotCoveredError:
            return UNKNOWN

    def refresh(self) -> None:
        """Read the slots again (after a primary did not answer a WAIT: it may have failed over)."""
        try:
            self.cluster.nodes_manager.initialize()
        except RedisError as error:
            log.warning("reading the cluster's slots failed", extra={"error": str(error)})

    def held(self, applied_on: Mapping[int, str]) -> set[int]:
        """Of ``applied_on`` (partition -> the primary that took its applies since its last
        commit), the partitions whose applies a replica of that primary now holds, or whose
        primary has no replica at all."""
        by_node: dict[str, list[int]] = {}
        for partition, node in applied_on.items():
            by_node.setdefault(node, []).append(partition)
        alone = self._without_replica(set(by_node))
        started = time.perf_counter()
        acked = self._wait({node: partitions for node, partitions in by_node.items() if node not in alone})
        metrics.REPLICA_WAIT_SECONDS.observe(time.perf_counter() - started)
        for node in alone:
            metrics.COMMITS_UNREPLICATED.inc(len(by_node[node]))
        return {p for node, partitions in by_node.items() if node in alone or acked.get(node, 0) >= REPLICAS_REQUIRED
                for p in partitions}

    def _without_replica(self, nodes: set[str]) -> set[str]:
        """The primaries among ``nodes`` of which the cluster knows no replica (CLUSTER NODES:
        a replica names its primary's id, whatever its state). Unknown: none is."""
        try:
            described = cast(dict[str, dict[str, object]], self.cluster.execute_command("CLUSTER NODES"))
        except RedisError as error:
            log.warning("reading the cluster's nodes failed", extra={"error": str(error)})
            return set()
        followed = {str(info["master_id"]) for info in described.values()}
        alone = {node for node in nodes if node in described and "master" in str(described[node]["flags"])
                 and str(described[node]["node_id"]) not in followed}
        for node in alone - self._alone:
            log.warning("this Redis primary has no replica: a failover cannot happen, commits do not wait for one",
                        extra={"node": node})
        self._alone = alone
        return alone

    def _wait(self, by_node: Mapping[str, list[int]]) -> dict[str, int]:
        """Send the commit mark and ``WAIT`` to each node, then read the answers: node -> the
        replicas that acknowledged (missing: the node did not answer or refused)."""
        mark_ms = str(int(time.time() * 1000))
        sent: list[tuple[str, ConnectionPool, Connection]] = []
        for node_name, partitions in by_node.items():
            node = self.cluster.get_node(node_name=node_name)
            if node is None:  # gone from the client's map: it failed over
                continue
            pool = self.cluster.get_redis_connection(node).connection_pool
            try:
                connection = pool.get_connection()
            except RedisError:
                continue
            try:
                connection.send_packed_command(connection.pack_commands([
                    ("SET", keys.commit_mark_key(partitions[0]), mark_ms),
                    ("WAIT", REPLICAS_REQUIRED, self.wait_ms),
                ]))
            except RedisError:
                connection.disconnect()
                pool.release(connection)
                continue
            sent.append((node_name, pool, connection))
        acked: dict[str, int] = {}
        for node_name, pool, connection in sent:
            try:
                connection.read_response()
                acked[node_name] = int(cast(int, connection.read_response()))
            except RedisError as error:  # a replica now (WAIT is refused there), or gone
                connection.disconnect()  # an answer may still be on its way
                log.warning("a primary did not confirm its replica", extra={"node": node_name, "error": str(error)})
            finally:
                pool.release(connection)
        return acked
