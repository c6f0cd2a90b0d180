"""A whole Redis Cluster shard lost under load (STACK_REDIS=cluster:3, REDIS_MODE=cluster, the
chart's topology): the replica of the primary that holds one partition's slots is lost for
good, then the primary is killed with ``kill -9``. With no replica to take over, the primary
comes back (supervisord restarts it, as Kubernetes restarts a pod) holding its slots and no
data; the replica then comes back and copies that. Readers follow a room of every partition
and senders post to all of them meanwhile. The bridges rebuild the lost shard's partitions
from Kafka, and those only: the other shards' keys are untouched. Every reader ends with every
acknowledged message of its room once, in Kafka order. Measured: the longest pause readers
saw, for the lost shard's rooms and for the others'. The figures go to
``test-artifacts/reliability/redis-cluster-shard-lost.json``.
"""

import asyncio
import json
import subprocess
import time

from redis import Redis
from redis.exceptions import RedisError
from steady_load import SteadyLoad
from support import longest_pause, report
from test_redis_cluster_failover import PARTITIONS, primary_of, restore, rooms_of_every_partition

from local.redis_cluster import cluster_ok

READERS = 60
RATE = 60.0  # messages per second, all rooms together
STEADY_S = 3
AFTER_S = 5
MARK = "untouched"  # a field the test puts in every partition's state: gone only where the shard was lost


def replica_of(host, port):
    """The port of the node that replicates the primary on ``port``."""
    nodes = subprocess.run(["redis-cli", "-h", host, "-p", str(port), "cluster", "nodes"],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    primary_id = next(line.split()[0] for line in nodes if "myself" in line.split()[2])
    return next(int(line.split()[1].split(":")[1].split("@")[0]) for line in nodes if line.split()[3] == primary_id)


def state_key(partition):
    return f"chat:{{p{partition}}}:state"


async def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise TimeoutError(condition)
        await asyncio.sleep(0.1)


def rebuilt_partitions(stack, since_line):
    """The partitions the bridges rebuilt from Kafka, from their logs' lines after ``since_line``
    (per log file)."""
    rebuilt = set()
    for log in sorted((stack.settings.run_dir / "logs").glob("bridge*.log")):
        for line in log.read_text().splitlines()[since_line.get(log.name, 0):]:
            if "rebuilding history from kafka" in line:
                rebuilt.add(json.loads(line[line.index("{"):])["partition"])
    return rebuilt


def log_lengths(stack):
    return {log.name: len(log.read_text().splitlines())
            for log in (stack.settings.run_dir / "logs").glob("bridge*.log")}


async def shard_lost_under_load(stack):
    settings = stack.settings
    host, ports = settings.host, [port for port, _ in settings.redis_nodes()]
    rooms = rooms_of_every_partition()
    lost_port = primary_of(host, ports[0], state_key(0))
    replica_port = replica_of(host, lost_port)
    lost = {p for p in rooms if primary_of(host, ports[0], state_key(p)) == lost_port}

    def node_of(partition):  # the primary that holds the partition's keys now
        return Redis(host=host, port=primary_of(host, ports[0], state_key(partition)))

    async with SteadyLoad(settings.gateway_url, list(rooms.values()), READERS, RATE) as load:
        await load.open_readers()
        load.start_senders()
        await asyncio.sleep(STEADY_S)
        for p in rooms:
            node_of(p).hset(state_key(p), MARK, 1)
        logged = await asyncio.to_thread(log_lengths, stack)
        # Every replica has had a full sync by now: none may have left the snapshot it got,
        # or a node promoted since would come back from it, stale, instead of empty.
        snapshots = sorted(rdb.parent.name for rdb in (settings.run_dir / "redis").glob("*/*.rdb"))
        before = Redis(host=host, port=lost_port).info("server")["run_id"]
        struck_at = time.monotonic()
        await asyncio.to_thread(stack.lose, f"redis-{ports.index(replica_port) + 1}")
        await asyncio.to_thread(stack.kill, f"redis-{ports.index(lost_port) + 1}")  # back empty, its slots kept

        def lost_back_empty():
            # Started again, without what it held. Not "no keys": posts and the bridges
            # write to it within milliseconds of its return.
            try:
                node = Redis(host=host, port=lost_port)
                return (node.info("server")["run_id"] != before
                        and not any(node.hexists(state_key(p), MARK) for p in lost))
            except RedisError:
                return False

        await wait_for(lost_back_empty)
        await asyncio.to_thread(stack.ctl, "start", f"redis-{ports.index(replica_port) + 1}")
        await wait_for(lambda: cluster_ok(host, ports))
        whole_s = time.monotonic() - struck_at
        await wait_for(lambda: all(Redis(host=host, port=lost_port).hget(state_key(p), f"ready:{p}") for p in lost))
        await asyncio.sleep(AFTER_S)
        await load.stop_senders()
        await load.wait_delivered()
        marked = {p: node_of(p).hget(state_key(p), MARK) is not None for p in rooms}

        def pause(of_rooms):
            return round(max(longest_pause(reader.arrived, struck_at) for reader in load.readers
                             if reader.room in of_rooms), 2)

        lost_rooms = {rooms[p] for p in lost}
        return {
            "readers": READERS,
            "rooms": len(rooms),
            "lost_partitions": sorted(lost),
            "rebuilt_partitions": sorted(await asyncio.to_thread(rebuilt_partitions, stack, logged)),
            "kept_state": sorted(p for p, kept in marked.items() if kept),
            **load.outcome(),
            "pause_lost_shard_s": pause(lost_rooms),
            "pause_other_shards_s": pause(set(rooms.values()) - lost_rooms),
            # Every test client posts from 127.0.0.1, whose per-address budgets are on one
            # shard: while that one is away, every post is refused (fail closed) and every
            # room pauses. The delay from a message's stamp to its readers is the stream's part.
            "delay_lost_shard_s": round(load.longest_delay(struck_at, lost_rooms), 2),
            "delay_other_shards_s": round(load.longest_delay(struck_at, set(rooms.values()) - lost_rooms), 2),
            "cluster_whole_again_s": round(whole_s, 2),
            "posts_refused": sum(load.refusals(struck_at).values()),
            "readers_failed": load.failures(),
            "snapshots_before_fault": snapshots,
        }


def test_a_shard_lost_whole_under_load_is_rebuilt_from_kafka_losing_nothing(cluster_stack):
    try:
        figures = asyncio.run(shard_lost_under_load(cluster_stack))
    finally:
        restore(cluster_stack)
    report("redis-cluster-shard-lost", figures)
    print(figures)
    assert not figures["readers_failed"], figures
    assert not figures["snapshots_before_fault"], figures
    assert figures["rebuilt_partitions"] == figures["lost_partitions"], figures
    assert figures["kept_state"] == sorted(set(range(PARTITIONS)) - set(figures["lost_partitions"])), figures
    wrong = {name: figures[name] for name in ("lost", "duplicated", "out_of_order", "unexpected")}
    assert wrong == dict.fromkeys(wrong, 0), figures
