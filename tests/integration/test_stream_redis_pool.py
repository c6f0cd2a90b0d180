"""The stream worker's Redis pool is bounded in cluster mode as on one node: a burst of
commands beyond the bound waits for a connection, and past the wait fails alone, without
opening more connections and without the other commands to that node losing theirs
(Redis alone, no Kafka, no services: one node, then a three-primary cluster)."""

import concurrent.futures
import time

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from support import RedisServer, redis_cluster

from chat_common import keys
from stream.app import redis_pool
from stream.config import Config

BOUND = 4
WAIT_S = 0.5
HOLD_S = 1.5  # each of the first BOUND commands holds its connection this long (BLPOP on an empty list)


@pytest.fixture(scope="module")
def single_node(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.port
    server.stop()


@pytest.fixture(scope="module")
def cluster_ports(tmp_path_factory):
    with redis_cluster(tmp_path_factory.mktemp("pool-cluster")) as ports:
        yield ports


def burst(client, key):
    """BOUND commands that hold their connection, then one more: (the first ones' results,
    the extra one's error and how long it waited)."""
    with concurrent.futures.ThreadPoolExecutor(BOUND + 1) as pool:
        holders = [pool.submit(client.blpop, [key], HOLD_S) for _ in range(BOUND)]
        time.sleep(0.3)  # the holders have their connections
        started = time.monotonic()
        try:
            client.get(key)
            error = None
        except RedisConnectionError as refused:
            error = refused
        waited = time.monotonic() - started
        results = [holder.result() for holder in holders]
    return results, error, waited


def clients_of(port):
    return len(Redis(port=port).client_list())


def pool_client(mode, port, monkeypatch):
    before = keys.layout()
    keys.configure(mode, 6)
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    monkeypatch.setenv("REDIS_MODE", mode)
    monkeypatch.setenv("SESSION_SECRET", "x" * 32)
    try:
        return redis_pool(Config.from_env(), connections=BOUND, wait_s=WAIT_S)
    finally:
        keys.configure(keys.CLUSTER if before.cluster else keys.SINGLE, before.partitions)


def test_one_node_pool_beyond_its_bound_waits_then_refuses(single_node, monkeypatch):
    client = pool_client(keys.SINGLE, single_node, monkeypatch)
    idle = clients_of(single_node)
    results, error, waited = burst(client, "pool:key")
    assert results == [None] * BOUND  # the holders were not disturbed
    assert error is not None and WAIT_S <= waited < HOLD_S
    assert clients_of(single_node) - idle <= BOUND
    assert client.get("pool:key") is None  # free again


def test_a_cluster_node_s_pool_beyond_its_bound_waits_then_refuses_as_one_node_s(cluster_ports, monkeypatch):
    client = pool_client(keys.CLUSTER, cluster_ports[0], monkeypatch)
    key = "chat:{p0}:pool"
    node = client.get_node_from_key(key)
    client.get(key)  # the slots read; one connection to the node
    idle = clients_of(node.port)
    results, error, waited = burst(client, key)
    assert results == [None] * BOUND  # the node's other connections were not dropped
    # Refused after the pool's wait, as on one node: not after retries of a node taken for failed.
    assert error is not None and WAIT_S <= waited < HOLD_S, (error, waited)
    assert clients_of(node.port) - idle <= BOUND - 1
    assert client.get(key) is None
    client.close()
