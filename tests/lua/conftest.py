"""Tests of the Redis Lua scripts, each run on its own against a real Redis (no Kafka, no
services): a redis-server on a free loopback port for the session, flushed before each test."""

import pytest
from redis import Redis
from support import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.port
    server.stop()


@pytest.fixture
def redis(redis_server):
    """A client of the session's Redis, emptied first (bytes replies, as the services use)."""
    client = Redis(port=redis_server)
    client.flushall()
    yield client
    client.close()
