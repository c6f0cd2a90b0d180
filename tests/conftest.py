"""Fixtures shared by every test folder.

``stack`` starts the real local stack (Kafka, Redis, the three services, nginx) once per
test session, on free loopback ports and in a temporary directory, with the same code as
``make run`` (local/stack.py), and stops it at the end.
"""

import socket

import pytest

from stack import Settings, Stack


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Settings that make the behaviour under test reachable in seconds rather than minutes.
TEST_SERVICE_ENV = {
    "HISTORY_MAX": "100",  # the Redis window per room: small, so tests can leave it
    "RATE_LIMIT_WINDOW_S": "60",  # long enough that the rate-limit test fills it even on a busy machine
    "RATE_LIMIT_USER": "300",  # tests that post a lot spread it over several user names
    "RATE_LIMIT_IP": "100000",  # every test client shares 127.0.0.1
    "STREAM_HEARTBEAT_S": "2",
    "STREAM_WORKERS": "2",
    "INGEST_PRODUCE_TIMEOUT_S": "3",
    "LOG_LEVEL": "INFO",
}


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("stack")
    settings = Settings(
        gateway_port=free_port(),
        ingest_port=free_port(),
        stream_port=free_port(),
        bridge_port=free_port(),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        redis_port=free_port(),
        run_dir=run_dir,
        partitions=3,
        service_env=TEST_SERVICE_ENV,
    )
    running = Stack(settings, supervisor_log=str(run_dir / "supervisord.log")).start()
    yield running
    running.stop()
