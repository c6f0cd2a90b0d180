"""Any one Kafka broker may die: on a three-broker cluster (replication 3,
min.insync.replicas 2) a broker is killed with SIGKILL while a room is busy, and started
again later.

An ingest, a bridge and a stream service run beside the stack, on that cluster and a
topic of their own (and a Redis database of their own on the stack's Redis). Readers
follow a room whose partition the killed broker led; a sender posts without pause, each
message retried with its client_id until acknowledged, as the page does. Posts are refused
(503) only while Kafka moves the partition's leadership to a surviving broker; every
reader ends with every acknowledged message once, in Kafka order; the restarted broker
catches up and holds every later write again. The figures go to
``test-artifacts/reliability/kafka-broker-kill-9.json`` (docs/reliability.md quotes them).
"""

import threading
import time
import uuid

import httpx
import pytest
import redis
from kafka.partitioner.default import murmur2
from kafka_cluster import NODE_IDS, KafkaCluster
from support import SseClient, longest_pause, new_room, post, report, services_beside, stream_url

PARTITIONS = 3
READERS = 3
SENDER_NAMES = 10  # posts spread over names: the per-user rate limit stays far away
REDIS_DB = 2  # not the stack's (0) nor test_bridge_topic's (1): the per-partition state is per topic


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with KafkaCluster(tmp_path_factory.mktemp("kafka-cluster")).start() as running:
        yield running


@pytest.fixture(scope="module")
def services(stack, cluster, tmp_path_factory):
    """ingest, bridge and stream on the cluster: {name: base URL}."""
    topic = f"chat.cluster-{uuid.uuid4().hex[:8]}"
    cluster.create_topic(topic, PARTITIONS)
    redis_url = stack.settings.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    run_dir = tmp_path_factory.mktemp("cluster-services")
    env = {"KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap_servers, "KAFKA_TOPIC": topic, "REDIS_URL": redis_url,
           "BRIDGE_GROUP_ID": f"bridge-{topic}", "BRIDGE_INSTANCE_ID": "cluster-bridge-0"}
    try:
        with services_beside(stack, ("ingest", "bridge", "stream"), run_dir, ready_within=120, **env) as urls:
            yield {**urls, "topic": topic}
    finally:
        store = redis.Redis.from_url(redis_url)
        store.flushdb()
        store.close()


class Sender(threading.Thread):
    """Posts into ``room`` until stopped, one message at a time, each retried with its
    client_id until acknowledged; keeps when (and how) each attempt was refused and when
    each message was acknowledged."""

    def __init__(self, base, room):
        super().__init__(daemon=True)
        self.base, self.room = base, room
        self.client_ids = []  # in the order acknowledged
        self.acked_at = []  # time.monotonic() of each acknowledgement
        self.refused = []  # (status, time.monotonic()) of each refused attempt; status 0: no answer
        self.longest_wait_s = 0.0  # from a message's first attempt to its acknowledgement
        self.stopping = threading.Event()  # finish the message in hand, then stop
        self.abandoned = threading.Event()  # stop at once (the test is over)

    def run(self):
        seq = 0
        while not (self.stopping.is_set() or self.abandoned.is_set()):
            client_id, first_attempt = f"{self.room}-{seq}", time.monotonic()
            while True:
                try:
                    response = post(self.base, self.room, user=f"sender{seq % SENDER_NAMES}", text=f"m{seq}",
                                    client_id=client_id)
                    if response.status_code == 201:
                        break
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                self.refused.append((status, time.monotonic()))
                if self.abandoned.wait(0.2):
                    return
            self.acked_at.append(time.monotonic())
            self.client_ids.append(client_id)
            self.longest_wait_s = max(self.longest_wait_s, self.acked_at[-1] - first_attempt)
            seq += 1
            time.sleep(0.01)

    def wait_acked(self, count, timeout):
        deadline = time.monotonic() + timeout
        while len(self.acked_at) < count:
            assert self.is_alive() and time.monotonic() < deadline, f"{count} messages not acknowledged in time"
            time.sleep(0.05)

    def stop(self):
        """Stop after the message in hand is acknowledged."""
        self.stopping.set()
        self.join(60)
        assert not self.is_alive(), "the last message was not acknowledged within a minute"


def partition_of(room):
    """The partition a room's messages go to (the producer's default partitioner)."""
    return (murmur2(room.encode()) & 0x7FFFFFFF) % PARTITIONS


@pytest.mark.slow
def test_a_broker_killed_and_restarted_mid_flow_loses_repeats_and_reorders_nothing(cluster, services):
    topic = services["topic"]
    leaders = cluster.leaders(topic)
    victim = max(NODE_IDS, key=lambda node: (list(leaders.values()).count(node), -node))
    room = new_room("brokerkill")
    while leaders[partition_of(room)] != victim:  # a room whose messages the victim leads
        room = new_room("brokerkill")
    clients = [SseClient(stream_url(services["stream"], room, history=0), reconnect=True) for _ in range(READERS)]
    sender = Sender(services["ingest"], room)
    try:
        sender.start()
        sender.wait_acked(100, timeout=60)

        struck_at = time.monotonic()
        cluster.kill(victim)
        acked_at_kill = len(sender.acked_at)
        sender.wait_acked(acked_at_kill + 100, timeout=60)  # writes flow again on the two survivors
        assert victim not in cluster.leaders(topic).values()

        restarted_at = time.monotonic()
        cluster.restart(victim)
        cluster.wait_in_sync(topic, set(NODE_IDS), timeout=120)  # it caught up: acks=all waits for it again
        rejoined_s = time.monotonic() - restarted_at
        sender.wait_acked(len(sender.acked_at) + 100, timeout=60)
        sender.stop()

        count = len(sender.client_ids)
        for client in clients:
            client.wait_for(lambda c: len(c.messages()) >= count, 90)
            shown = [m["client_id"] for m in client.messages()]
            assert shown == sender.client_ids, (
                f"lost {set(sender.client_ids) - set(shown)}; repeated {len(shown) - len(set(shown))}")
            ids = [int(m["id"]) for m in client.messages()]
            assert ids == sorted(set(ids))  # Kafka's order: increasing offsets

        # Refused only while leadership moved, with the service's 503 (and Retry-After):
        # no message waited half a minute for its acknowledgement.
        refused = [(status, at) for status, at in sender.refused if at >= struck_at]
        assert {status for status, _ in sender.refused} <= {503}, sender.refused
        assert sender.longest_wait_s < 30, sender.longest_wait_s
        last_refusal = max([at for _, at in refused if at < restarted_at], default=struck_at)
        writes_back_s = next(at for at in sender.acked_at if at >= last_refusal) - struck_at
        report("kafka-broker-kill-9", {
            "brokers": len(NODE_IDS), "replication_factor": 3, "min_insync_replicas": 2,
            "partitions_led_by_killed_broker": list(leaders.values()).count(victim),
            "messages": count, "readers": READERS, "lost": 0, "duplicated": 0, "out_of_order": 0,
            "posts_refused_then_retried": len(refused),
            "posts_refused_after_restart": len([at for _, at in refused if at >= restarted_at]),
            "longest_wait_for_an_ack_s": round(sender.longest_wait_s, 2),
            "writes_back_after_kill_s": round(writes_back_s, 2),
            "longest_pause_s": round(max(longest_pause(client.message_arrivals(), struck_at) for client in clients), 2),
            "restarted_broker_in_sync_s": round(rejoined_s, 2),
            "reconnects": sum(client.connects - 1 for client in clients),
        })
    finally:
        sender.abandoned.set()
        for client in clients:
            client.close()
