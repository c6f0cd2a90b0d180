"""The stack's Kafka: one KRaft node run from the jars scripts/install.sh fetched, its
storage formatted once per run directory, and the chat topic made once it answers. The
chaos tests run three such nodes the same way (tests/chaos/kafka_cluster.py)."""

import base64
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

ROOT = Path(__file__).resolve().parent.parent
# The Prometheus JMX exporter's agent (scripts/install.sh) and what it exports (the chart's own).
METRICS_AGENT = ROOT / ".cache" / "kafka-metrics-agent" / "jmx_prometheus_javaagent.jar"
METRICS_CONFIG = ROOT / "helm" / "kafka" / "files" / "metrics.yaml"


def kafka_node_command(kafka_home: Path, node_dir: Path, heap: tuple[str, str] = ("256m", "768m"),
                       metrics: str | None = None) -> list[str]:
    """Run one Kafka node from the jars in ``kafka_home``, configured by the
    server.properties and log4j2.properties in ``node_dir``; ``heap``: (-Xms, -Xmx);
    ``metrics``: host:port where the broker's metrics are served for Prometheus (None: not).
    The serial collector: a small heap on a couple of cores, where G1's concurrent threads
    cost more CPU than they save in pauses (bench/README.md, the per-message path)."""
    agent = [f"-javaagent:{METRICS_AGENT}={metrics}:{METRICS_CONFIG}"] if metrics else []
    return ["java", f"-Xms{heap[0]}", f"-Xmx{heap[1]}", "-XX:+UseSerialGC", *agent,
            f"-Dlog4j2.configurationFile={node_dir}/log4j2.properties",
            "-cp", f"{kafka_home}/libs/*", "kafka.Kafka", f"{node_dir}/server.properties"]


def kafka_format_command(kafka_home: Path, node_dir: Path, cluster_id: str) -> list[str]:
    """Format the storage of the node configured in ``node_dir`` for ``cluster_id``."""
    return ["java", "-cp", f"{kafka_home}/libs/*", "kafka.tools.StorageTool", "format",
            f"--cluster-id={cluster_id}",  # "=": an id may start with "-"
            "--config", f"{node_dir}/server.properties"]


def kafka_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def format_storage(kafka_home: Path, node_dir: Path) -> None:
    """Format the node's storage for a new cluster, unless it holds data already (a
    restarted stack keeps its messages)."""
    if not (node_dir / "data" / "meta.properties").exists():
        subprocess.run(kafka_format_command(kafka_home, node_dir, kafka_cluster_id()),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def create_topic(bootstrap: str, topic: str, partitions: int, timeout: float,
                 check_alive: Callable[[], None], configs: dict[str, str] | None = None) -> None:
    """Make ``topic`` (one replica) unless it exists, retrying until the broker answers or
    ``timeout`` seconds have passed; ``check_alive`` raises when waiting longer is pointless."""
    for attempt in Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.5),
                            retry=retry_if_exception_type(KafkaError), reraise=True):
        with attempt:
            check_alive()
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="chat-stack")
            try:
                admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})])
            except TopicAlreadyExistsError:
                pass
            finally:
                admin.close()
