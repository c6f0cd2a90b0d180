"""A three-broker Kafka cluster (KRaft) on loopback, for tests that lose one broker.

Each node is a broker and a controller (node ids 1..3, all three voters of the metadata
quorum), with the replication settings of helm/kafka/values-ha.yaml: every partition on
three brokers, a write acknowledged (acks=all) once two hold it. The nodes run from the
jars in .cache/kafka, each a plain child process with its data and log in a directory of
its own; a node can be killed with SIGKILL and started again on the same data.

    with KafkaCluster(tmp_path).start() as cluster:
        cluster.create_topic("chat.test", partitions=3)
        leader = cluster.leaders("chat.test")[0]
        cluster.kill(leader)
        cluster.restart(leader)
        cluster.wait_in_sync("chat.test", {1, 2, 3})
"""

import os
import shutil
import signal
import subprocess
import time

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError
from support import free_port

from local.kafka_node import kafka_cluster_id, kafka_format_command, kafka_node_command
from local.settings import KAFKA_HOME, TEMPLATES

NODE_IDS = (1, 2, 3)
HOST = "127.0.0.1"

SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
auto.create.topics.enable=false
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
# fewer than the default 50: the group offsets topic is created quickly on a small machine
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
"""


class KafkaCluster:
    """Three combined broker+controller nodes on free loopback ports under ``directory``."""

    def __init__(self, directory, heap="512m"):
        if not (KAFKA_HOME / "libs").is_dir():
            raise RuntimeError("The Kafka broker is not installed: run scripts/install.sh (make install-test does).")
        self.directory = directory
        self.heap = heap
        self.ports = {node: free_port() for node in NODE_IDS}
        self.controller_ports = {node: free_port() for node in NODE_IDS}
        self.processes = {}
        self.killed = set()  # nodes killed on purpose, not yet restarted

    @property
    def bootstrap_servers(self):
        return ",".join(f"{HOST}:{self.ports[node]}" for node in NODE_IDS)

    def node_dir(self, node):
        return self.directory / f"kafka-{node}"

    def log_file(self, node):
        return self.node_dir(node) / "kafka.log"

    # -- starting and stopping -------------------------------------------------------------

    def start(self, timeout=120):
        """Format every node's storage with one cluster id, start the three nodes and wait
        until all three brokers are registered."""
        cluster_id = kafka_cluster_id()
        voters = ",".join(f"{node}@{HOST}:{self.controller_ports[node]}" for node in NODE_IDS)
        try:
            for node in NODE_IDS:
                folder = self.node_dir(node)
                folder.mkdir(parents=True)
                (folder / "server.properties").write_text(SERVER_PROPERTIES.format(
                    node_id=node, voters=voters, host=HOST, port=self.ports[node],
                    controller_port=self.controller_ports[node], data=folder / "data"))
                shutil.copy(TEMPLATES / "log4j2.properties", folder / "log4j2.properties")
            formats = [subprocess.Popen(kafka_format_command(KAFKA_HOME, self.node_dir(node), cluster_id),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                       for node in NODE_IDS]
            if any([process.wait(120) != 0 for process in formats]):  # wait for all three
                raise RuntimeError("formatting the Kafka nodes' storage failed")
            for node in NODE_IDS:
                self._launch(node)
            self.wait_brokers(set(NODE_IDS), timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, node):
        folder = self.node_dir(node)
        with open(self.log_file(node), "ab") as log:
            self.processes[node] = subprocess.Popen(
                kafka_node_command(KAFKA_HOME, folder, heap=(self.heap, self.heap)),
                cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches pytest, whose teardown stops the nodes
            )

    def kill(self, node):
        """SIGKILL one node, as a crashed machine dies: no clean shutdown, no handover."""
        process = self.processes[node]
        self.killed.add(node)
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    def restart(self, node):
        """Start a killed node again on its own data."""
        assert self.processes[node].poll() is not None, f"node {node} is still running"
        self._launch(node)
        self.killed.discard(node)

    def stop(self):
        """Stop every node still running: SIGTERM, then SIGKILL after 30 s."""
        running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _check_alive(self):
        """Fail at once when a node died that was not killed on purpose."""
        for node, process in self.processes.items():
            if node not in self.killed and process.poll() is not None:
                raise RuntimeError(f"Kafka node {node} exited ({process.returncode}); see {self.log_file(node)}")

    # -- administration --------------------------------------------------------------------

    def admin(self):
        return KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, client_id="chaos-cluster",
                                request_timeout_ms=10000)

    def _retry(self, action, timeout, what):
        """Run ``action(admin)`` until it returns something true, and return that; Kafka
        errors on the way are retried."""
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            self._check_alive()
            try:
                admin = self.admin()
                try:
                    result = action(admin)
                finally:
                    admin.close()
                if result:
                    return result
            except KafkaError as error:
                last_error = error
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka cluster: {what} not reached after {timeout} s ({last_error!r})")
            time.sleep(0.5)

    def wait_brokers(self, nodes, timeout=120):
        """Wait until exactly ``nodes`` are the registered, unfenced brokers."""
        def registered(admin):
            brokers = admin.describe_cluster()["brokers"]
            return {b["broker_id"] for b in brokers if not b.get("is_fenced")} == set(nodes)
        self._retry(registered, timeout, f"brokers {sorted(nodes)}")

    def create_topic(self, topic, partitions, timeout=60):
        """Create ``topic`` on all three brokers, acknowledged once two hold a write."""
        def create(admin):
            try:
                admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 3,
                                             "configs": {"min.insync.replicas": "2"}}})
            except TopicAlreadyExistsError:
                pass
            return self._partitions(admin, topic)
        self._retry(create, timeout, f"topic {topic} created")
        self.wait_in_sync(topic, set(NODE_IDS), timeout)

    @staticmethod
    def _partitions(admin, topic):
        """{partition: (leader, in-sync replicas)} of ``topic``, or None while it has no leaders."""
        (described,) = admin.describe_topics([topic])
        partitions = {p["partition_index"]: (p["leader_id"], set(p["isr_nodes"]))
                      for p in described["partitions"]}
        if not partitions or any(leader < 0 for leader, _ in partitions.values()):
            return None
        return partitions

    def leaders(self, topic, timeout=30):
        """{partition: the node leading it}."""
        partitions = self._retry(lambda admin: self._partitions(admin, topic), timeout, f"leaders of {topic}")
        return {partition: leader for partition, (leader, _) in partitions.items()}

    def wait_in_sync(self, topic, nodes, timeout=120):
        """Wait until ``nodes`` are in the in-sync replica set of every partition of ``topic``."""
        def in_sync(admin):
            partitions = self._partitions(admin, topic)
            return partitions and all(set(nodes) <= isr for _, isr in partitions.values())
        self._retry(in_sync, timeout, f"{sorted(nodes)} in sync on {topic}")
