"""Fixtures shared by every test folder.

``stack`` starts the real local stack (Kafka, Redis, the three services, nginx) once per
test session, on free loopback ports and in a temporary directory, with the same code as
``make run`` (local/stack.py), and stops it at the end.
"""

import pytest

from stack import Settings, Stack
from support import TEST_SERVICE_ENV, free_port


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
        stream_connections_per_ip=300,  # every test client is 127.0.0.1; the load tests hold 200 streams
        service_env=TEST_SERVICE_ENV,
    )
    running = Stack(settings, supervisor_log=str(run_dir / "supervisord.log")).start()
    yield running
    running.stop()
