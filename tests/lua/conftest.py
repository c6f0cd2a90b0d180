"""Tests of the Redis Lua scripts, each run on its own against a real Redis (no Kafka, no
services): a redis-server on a free loopback port for the session, flushed before each test."""

import subprocess
import time

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from support import free_port


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except RedisConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(10)


@pytest.fixture
def redis(redis_server):
    """A client of the session's Redis, emptied first (bytes replies, as the services use)."""
    client = Redis(port=redis_server)
    client.flushall()
    yield client
    client.close()
