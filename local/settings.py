"""The local stack's settings: where it runs, its ports and how many instances of each
service, each read from an environment variable (README, "What runs locally")."""

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from local.redis_cluster import parse_mode as parse_redis_mode

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "local" / "templates"
KAFKA_HOME = ROOT / ".cache" / "kafka"  # the broker's jars, put there by scripts/install.sh
VENV_BIN = Path(sys.executable).parent
SERVICES = ("ingest", "bridge", "stream")
INSTANCE_PORT_STEP = 10  # instance n of a service listens on its port + 10 * (n - 1): 8001, 8011, ...


def instance_program(name: str, n: int) -> str:
    """The supervisord program (and log file) of instance ``n`` (from 1) of a service."""
    return name if n == 1 else f"{name}-{n}"


def env_or(name: str, default: object) -> str:
    """The environment variable ``name``, or ``default`` when it is unset or empty."""
    return os.environ.get(name) or str(default)


def parse_replicas(text: str | None) -> dict[str, int]:
    """``STACK_REPLICAS``: how many instances of each service, e.g. ``ingest:2,bridge:3,stream:3``;
    a service not named runs once."""
    replicas = dict.fromkeys(SERVICES, 1)
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, _, count = part.partition(":")
        if name not in SERVICES or not count.isdigit() or int(count) < 1:
            raise ValueError(f"STACK_REPLICAS: {part!r} is not <service>:<count> with a service of "
                             f"{', '.join(SERVICES)} and a count of at least 1")
        replicas[name] = int(count)
    return replicas


@dataclass
class Settings:
    host: str = "127.0.0.1"
    gateway_port: int = 8080
    ingest_port: int = 8001
    stream_port: int = 8002
    bridge_port: int = 8003
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    # The broker's metrics for Prometheus (the JMX exporter's agent); 0: none (KAFKA_METRICS_PORT: 9404).
    kafka_metrics_port: int = 0
    redis_port: int = 6379
    # As the chart's Redis (helm/redis/values.yaml); full, it refuses writes (noeviction).
    redis_maxmemory: str = "256mb"
    # STACK_REDIS=cluster:<masters>: Redis Cluster with that many primaries, one replica each
    # (local/redis_cluster.py); 0: one node
    redis_masters: int = 0
    redis_node_ports: list[int] = field(default_factory=list)  # each node's port (else redis_port + i)
    redis_bus_ports: list[int] = field(default_factory=list)  # each node's cluster bus port (else + 10000)
    run_dir: Path = ROOT / ".run" / "local"
    kafka_home: Path = KAFKA_HOME
    partitions: int = 6
    stream_connections_per_ip: int = 100  # the gateway's cap on open streams per client address; 0: none
    api_connections_per_ip: int = 20  # the gateway's cap on /api/ requests in progress per client address; 0: none
    body_deadline_s: int = 10  # the gateway's deadline for a whole /api/ request, headers and body, from its first byte
    replicas: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SERVICES, 1))  # instances per service
    # service -> a port per instance (else port + 10 * (n - 1))
    instance_ports: dict[str, list[int]] = field(default_factory=dict)
    external_kafka: str | None = None  # KAFKA_BOOTSTRAP_SERVERS: use that cluster, start none
    external_redis: str | None = None  # REDIS_URL: use that server, start none
    service_env: dict[str, str] = field(default_factory=dict)  # extra environment for the services

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            gateway_port=int(env_or("GATEWAY_PORT", 8080)),
            ingest_port=int(env_or("INGEST_PORT", 8001)),
            stream_port=int(env_or("STREAM_PORT", 8002)),
            bridge_port=int(env_or("BRIDGE_PORT", 8003)),
            kafka_port=int(env_or("KAFKA_PORT", 9092)),
            kafka_controller_port=int(env_or("KAFKA_CONTROLLER_PORT", 9093)),
            kafka_metrics_port=int(env_or("KAFKA_METRICS_PORT", 9404)),
            redis_port=int(env_or("REDIS_PORT", 6379)),
            redis_maxmemory=env_or("STACK_REDIS_MAXMEMORY", "256mb"),
            redis_masters=parse_redis_mode(os.environ.get("STACK_REDIS")),
            run_dir=Path(env_or("RUN_DIR", ROOT / ".run" / "local")).resolve(),
            partitions=int(env_or("KAFKA_TOPIC_PARTITIONS", 6)),
            stream_connections_per_ip=int(env_or("GATEWAY_STREAM_CONNECTIONS_PER_IP", 100)),
            api_connections_per_ip=int(env_or("GATEWAY_API_CONNECTIONS_PER_IP", 20)),
            body_deadline_s=int(env_or("GATEWAY_BODY_DEADLINE_S", 10)),
            replicas=parse_replicas(os.environ.get("STACK_REPLICAS")),
            external_kafka=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            external_redis=os.environ.get("REDIS_URL") or None,
        )

    @property
    def kafka_bootstrap(self) -> str:
        return self.external_kafka or f"{self.host}:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        """The single node, or in cluster mode the seed node the services learn the others from."""
        port = self.redis_nodes()[0][0] if self.redis_masters else self.redis_port
        return self.external_redis or f"redis://{self.host}:{port}/0"

    def redis_nodes(self) -> list[tuple[int, int]]:
        """(port, cluster bus port) of each node of a Redis Cluster: primaries first, then replicas."""
        count = 2 * self.redis_masters
        ports = self.redis_node_ports or [self.redis_port + i for i in range(count)]
        buses = self.redis_bus_ports or [port + 10_000 for port in ports]
        return list(zip(ports[:count], buses[:count], strict=True))

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    def port(self, name: str, n: int = 1) -> int:
        """The port of instance ``n`` (from 1) of a service."""
        if name in self.instance_ports:
            return self.instance_ports[name][n - 1]
        port: int = getattr(self, name + "_port")
        return port + INSTANCE_PORT_STEP * (n - 1)

    def instances(self, name: str) -> list[str]:
        """The supervisord program of each instance of a service: ``stream``, then
        ``stream-2``, ``stream-3``, ... (the names stay when the service is scaled)."""
        return [instance_program(name, n) for n in range(1, self.replicas[name] + 1)]

    def service_url(self, name: str, n: int = 1) -> str:
        """The base URL of instance ``n`` (from 1) of a service."""
        return f"http://{self.host}:{self.port(name, n)}"

    def service_urls(self, name: str) -> list[str]:
        return [self.service_url(name, n) for n in range(1, self.replicas[name] + 1)]
