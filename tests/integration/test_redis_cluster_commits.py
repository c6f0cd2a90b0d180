"""The bridge on Redis Cluster (STACK_REDIS=cluster:3, REDIS_MODE=cluster) commits a
partition's offsets only once a replica holds its applies: while the replica of the shard
holding a partition is stopped, its records are applied (readers get them) but the group's
committed offset stays before them, so a failover then would have them applied again; the
other shards' partitions go on committing; once the replica is back, the commit catches up.
And a service given the wrong KAFKA_TOPIC_PARTITIONS stays unready, saying so."""

import os
import re
import signal
import time

import httpx
from kafka import KafkaConsumer, TopicPartition
from redis import Redis, RedisCluster
from support import new_room, post, start_service_beside, wait_applied

from chat_common.keys import room_partition

PARTITIONS = 6  # the cluster stack's topic
TOPIC = "chat.messages"
COMMIT_ROUNDS_S = 3.0  # three of the bridge's commit intervals (1 s)


def room_of(partition):
    while True:
        room = new_room("commit")
        if room_partition(room, PARTITIONS) == partition:
            return room


def until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def test_offsets_wait_for_the_shard_s_replica_and_catch_up_once_it_is_back(cluster_stack):
    settings = cluster_stack.settings
    base = settings.gateway_url
    cluster = RedisCluster(host=settings.host, port=settings.redis_nodes()[0][0])
    nodes = cluster.cluster_nodes()
    primary = cluster.get_node_from_key("chat:{p0}:state").name
    other = next(p for p in range(PARTITIONS) if cluster.get_node_from_key(f"chat:{{p{p}}}:state").name != primary)
    replica = next(name for name, node in nodes.items() if node["master_id"] == nodes[primary]["node_id"])
    replica_pid = Redis(host=settings.host, port=int(replica.rsplit(":", 1)[1])).info("server")["process_id"]
    cluster.close()
    # Reads the bridges' group's commits, never joining it (nothing is subscribed).
    group = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id="chat-bridge",
                          enable_auto_commit=False)
    ends = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)

    def committed(partition):
        found = group.committed(TopicPartition(TOPIC, partition))
        return found if found is not None else -1

    def end(partition):
        tp = TopicPartition(TOPIC, partition)
        return ends.end_offsets([tp])[tp]

    held_room, other_room = room_of(0), room_of(other)
    for room, partition in ((held_room, 0), (other_room, other)):  # both partitions flow, committed to their end
        wait_applied(base, room, post(base, room, text="before").json()["id"])
        until(lambda partition=partition: committed(partition) == end(partition), 30, "committed before")

    os.kill(replica_pid, signal.SIGSTOP)
    try:
        held = int(post(base, held_room, text="while the replica is stopped").json()["id"])
        wait_applied(base, held_room, str(held))  # applied on the primary: readers have it
        applied_at = time.monotonic()
        elsewhere = int(post(base, other_room, text="on another shard").json()["id"])
        until(lambda: committed(other) > elsewhere, 30, "the other shard's partition committed")
        while time.monotonic() < applied_at + COMMIT_ROUNDS_S:
            assert committed(0) <= held, "committed past an apply the replica does not hold"
            time.sleep(0.2)
    finally:
        os.kill(replica_pid, signal.SIGCONT)
    until(lambda: committed(0) > held, 30, "committed once the replica is back")
    after = post(base, held_room, text="after").json()["id"]
    wait_applied(base, held_room, after)
    group.close()
    ends.close()


def test_a_wrong_partition_count_keeps_ingest_and_the_bridge_unready_saying_both_numbers(cluster_stack, tmp_path):
    wrong = {"KAFKA_TOPIC_PARTITIONS": "4", "BRIDGE_GROUP_ID": "wrong-partitions", "INGEST_WORKERS": "1"}
    started = [start_service_beside(cluster_stack, name, tmp_path, **wrong) for name in ("ingest", "bridge")]
    try:
        for name, (_, url) in zip(("ingest", "bridge"), started, strict=True):
            def refused(url=url):
                try:
                    response = httpx.get(f"{url}/readyz", timeout=2)
                except httpx.HTTPError:
                    return False
                return response.status_code == 503 and response.json()["checks"].get("kafka_topic_partitions") is False
            until(refused, 60, f"{name} unready for its partition count")
            log = (tmp_path / f"{name}.log").read_text()
            errors = re.findall(r".*KAFKA_TOPIC_PARTITIONS is 4 but the topic chat\.messages has 6 partitions.*", log)
            assert len(errors) == 1, (name, errors)
            assert '"level": "ERROR"' in errors[0] or "ERROR" in errors[0], errors[0]
            assert "CROSSSLOT" not in log
    finally:
        for process, _ in started:
            process.terminate()
        for process, _ in started:
            process.wait(30)
