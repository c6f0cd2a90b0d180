"""Fixtures shared by every test folder.

``stack`` starts the real local stack (Kafka, Redis, the three services, nginx) once per
test session, on free loopback ports and in a temporary directory, with the same code as
``make run`` (local/stack.py), and stops it at the end. ``scaled_stack`` is the same stack
with the chart's topology: several instances of each service behind the gateway.
"""

import pytest
from support import TEST_SERVICE_ENV, cluster_settings, free_port

from local.stack import SERVICES, Settings, Stack, parse_replicas

# As helm/chatroom deploys it: 2 ingest pods, bridges sharing the partitions in a consumer
# group (3 here: two of the 6 partitions each), stream pods behind the Service.
CHART_TOPOLOGY = "ingest:2,bridge:3,stream:3"
MOST_INSTANCES = 4  # the scaling tests add one more instance than the topology has


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
        kafka_metrics_port=free_port(),  # the broker's request counters (tests/bench)
        redis_port=free_port(),
        run_dir=run_dir,
        partitions=3,
        stream_connections_per_ip=300,  # every test client is 127.0.0.1; the load tests hold 200 streams
        service_env=TEST_SERVICE_ENV,
    )
    running = Stack(settings, supervisor_log=str(run_dir / "supervisord.log")).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def scaled_stack(tmp_path_factory):
    """The stack with the chart's topology (CHART_TOPOLOGY), once per session. Tests that
    kill, stop or scale instances restore it before they end."""
    run_dir = tmp_path_factory.mktemp("scaled-stack")
    settings = Settings(
        gateway_port=free_port(),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_metrics_port=free_port(),  # the observability suite scrapes the broker too
        redis_port=free_port(),
        run_dir=run_dir,
        partitions=6,
        replicas=parse_replicas(CHART_TOPOLOGY),
        instance_ports={name: [free_port() for _ in range(MOST_INSTANCES)] for name in SERVICES},
        stream_connections_per_ip=400,  # every test client is 127.0.0.1; the scaling tests hold 260 streams
        service_env=TEST_SERVICE_ENV,
    )
    running = Stack(settings, supervisor_log=str(run_dir / "supervisord.log")).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def cluster_stack(tmp_path_factory):
    """The stack on Redis Cluster (STACK_REDIS=cluster:3: three primaries, one replica each),
    the services in cluster mode (REDIS_MODE=cluster), with the chart's topology."""
    run_dir = tmp_path_factory.mktemp("cluster-stack")
    settings = cluster_settings(
        run_dir,
        gateway_port=free_port(),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        partitions=6,
        replicas=parse_replicas(CHART_TOPOLOGY),
        instance_ports={name: [free_port() for _ in range(MOST_INSTANCES)] for name in SERVICES},
        stream_connections_per_ip=400,
        service_env=TEST_SERVICE_ENV,
    )
    running = Stack(settings, supervisor_log=str(run_dir / "supervisord.log")).start()
    yield running
    running.stop()
