"""The NetworkPolicies allow exactly the hops of the design, and nothing else.

The rendered policies of all three charts are evaluated the way Kubernetes does (a pod
selected by a policy of a type accepts only what one of them allows; a connection needs both
the source's egress and the destination's ingress) over the pods the charts run plus the
pods around them: the ingress controller, Prometheus, kube-dns, a stranger pod in the same
namespace and a pod in another namespace. The resulting graph must equal the hop graph.
"""

import itertools
from dataclasses import dataclass, field

import pytest
from k8s_manifests import NAMESPACE, containers, is_test_hook, of_kind, pod_labels, render, workloads


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict
    ports: dict = field(default_factory=dict)  # (port, protocol) by name, and as numbers

    def __hash__(self):
        return hash(self.name)


NAMESPACE_LABELS = {
    NAMESPACE: {"kubernetes.io/metadata.name": NAMESPACE},
    "ingress-nginx": {"kubernetes.io/metadata.name": "ingress-nginx"},
    "monitoring": {"kubernetes.io/metadata.name": "monitoring"},
    "kube-system": {"kubernetes.io/metadata.name": "kube-system"},
    "default": {"kubernetes.io/metadata.name": "default"},
}

OUTSIDERS = [
    Pod("ingress-controller", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
    Pod("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}),
    Pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, {("dns", "UDP"): 53, ("dns-tcp", "TCP"): 53}),
    Pod("stranger", NAMESPACE, {"app": "stranger"}),
    Pod("elsewhere", "default", {"app": "elsewhere"}),
]

# Short names of the charts' pods, by component label.
COMPONENT_NAMES = {"broker": "kafka", "server": "redis", "topics": "kafka-topics",
                   "cluster-create": "redis-cluster-create"}


def matches(selector, labels):
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression["key"], expression["operator"], expression.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def peer_matches(peer, pod, policy_namespace):
    if "ipBlock" in peer:
        return False  # the charts use none; pods are not addressed by IP here
    if "namespaceSelector" in peer:
        in_namespace = matches(peer["namespaceSelector"], NAMESPACE_LABELS[pod.namespace])
    else:
        in_namespace = pod.namespace == policy_namespace
    if "podSelector" in peer:
        return in_namespace and matches(peer["podSelector"], pod.labels)
    return in_namespace


def port_matches(rule_ports, target, port, protocol):
    if not rule_ports:
        return True
    for rule_port in rule_ports:
        if rule_port.get("protocol", "TCP") != protocol:
            continue
        wanted = rule_port.get("port")
        if wanted is None or wanted == port:
            return True
        if isinstance(wanted, str) and target.ports.get((wanted, protocol)) == port:
            return True
    return False


def allowed(policies, source, target, port, protocol):
    def direction(pod, kind, peers_key, other):
        if pod.namespace != NAMESPACE:
            return True  # not governed by the charts' policies
        selecting = [p for p in policies if matches(p["spec"]["podSelector"], pod.labels)
                     and kind in p["spec"].get("policyTypes", ["Ingress"])]
        if not selecting:
            return True
        for policy in selecting:
            for rule in policy["spec"].get(kind.lower(), []) or []:
                peers = rule.get(peers_key)
                peer_ok = not peers or any(peer_matches(peer, other, NAMESPACE) for peer in peers)
                if peer_ok and port_matches(rule.get("ports"), target, port, protocol):
                    return True
        return False

    return direction(source, "Egress", "to", target) and direction(target, "Ingress", "from", source)


def chart_pods(docs):
    pods = []
    for doc in workloads(docs):
        labels = pod_labels(doc)
        component = labels.get("app.kubernetes.io/component")
        name = COMPONENT_NAMES.get(component, component)
        ports = {}
        for container in containers(doc, init=False):
            for p in container.get("ports", []):
                protocol = p.get("protocol", "TCP")
                ports[(p.get("name", str(p["containerPort"])), protocol)] = p["containerPort"]
        pods.append(Pod(name, NAMESPACE, labels, ports))
    return pods


def hop_graph(docs, include_tests=False):
    """Every (source, target, port/protocol) the policies let through, between a chart's pod and anyone."""
    docs = [d for d in docs if include_tests or not is_test_hook(d)]
    policies = of_kind(docs, "NetworkPolicy")
    pods = chart_pods(docs)
    everyone = pods + OUTSIDERS
    edges = set()
    for source, target in itertools.product(everyone, everyone):
        if source.namespace != NAMESPACE and target.namespace != NAMESPACE:
            continue
        for (_, protocol), port in target.ports.items():
            if allowed(policies, source, target, port, protocol):
                edges.add((source.name, target.name, f"{port}/{protocol}"))
    return edges


def dns(*names):
    return {(n, "kube-dns", p) for n in names for p in ("53/UDP", "53/TCP")}


# The design's hop graph.
EXPECTED = {
    # ingress controller -> web, ingest, stream
    ("ingress-controller", "web", "8080/TCP"),
    ("ingress-controller", "ingest", "8001/TCP"),
    ("ingress-controller", "stream", "8002/TCP"),
    # ingest -> Kafka + Redis (rate limits); bridge -> Kafka + Redis; stream -> Redis + Kafka (scrollback)
    *{(s, "kafka", "9092/TCP") for s in ("ingest", "bridge", "stream")},
    *{(s, "redis", "6379/TCP") for s in ("ingest", "bridge", "stream")},
    # monitoring -> metrics ports
    ("prometheus", "ingest", "8001/TCP"),
    ("prometheus", "stream", "8002/TCP"),
    ("prometheus", "bridge", "8003/TCP"),
    # Kafka's own: brokers with each other (replication, controller quorum); the topic Job
    ("kafka", "kafka", "9092/TCP"),
    ("kafka", "kafka", "9093/TCP"),
    ("kafka-topics", "kafka", "9092/TCP"),
    # DNS (Redis resolves nothing and gets no egress at all)
    *dns("web", "ingest", "stream", "bridge", "kafka", "kafka-topics"),
}


@pytest.mark.parametrize("scenario", ["defaults", "dev", "ha", "gateway"])
def test_policies_allow_exactly_the_hop_graph(scenario):
    graph = hop_graph(render(scenario))
    assert graph - EXPECTED == set(), "allowed but not in the design"
    assert EXPECTED - graph == set(), "in the design but blocked"


def test_monitoring_adds_only_the_redis_exporter_and_kafka_metrics_scrapes():
    graph = hop_graph(render("monitoring"))
    assert graph - EXPECTED == {("prometheus", "redis", "9121/TCP"), ("prometheus", "kafka", "9404/TCP")}
    assert EXPECTED - graph == set()


def test_redis_cluster_adds_only_its_nodes_bus_replication_and_create_job():
    """Cluster mode: the nodes talk to each other on the bus and the Redis port (replication),
    the create Job reaches them, both look names up; clients reach every node, nobody else any."""
    graph = hop_graph(render("redis-cluster"))
    assert graph - EXPECTED == {
        ("redis", "redis", "6379/TCP"), ("redis", "redis", "16379/TCP"),
        ("redis-cluster-create", "redis", "6379/TCP"), *dns("redis", "redis-cluster-create"),
    }
    assert EXPECTED - graph == set()


def test_strangers_get_nothing():
    graph = hop_graph(render("defaults"))
    for source, target, _ in graph:
        assert "stranger" not in (source, target) and "elsewhere" not in (source, target)


def test_default_deny_covers_every_pod_in_the_namespace():
    docs = render("defaults")
    deny = [p for p in of_kind(docs, "NetworkPolicy") if p["spec"]["podSelector"] == {}]
    assert len(deny) == 1
    assert sorted(deny[0]["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert not deny[0]["spec"].get("ingress") and not deny[0]["spec"].get("egress")


def test_helm_test_pod_reaches_ingest_and_stream_only_while_the_test_runs():
    """Its policies are test hooks, deleted once the test passed."""
    docs = render("defaults")
    for policy in of_kind(docs, "NetworkPolicy"):
        if is_test_hook(policy):
            assert "hook-succeeded" in policy["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    with_tests = hop_graph(docs, include_tests=True)
    assert with_tests - hop_graph(docs) == {
        ("test", "ingest", "8001/TCP"), ("test", "stream", "8002/TCP"), *dns("test"),
    }


def test_without_policies_nothing_is_isolated():
    """The toggle works: with policies off, none are rendered, so the graph is everything."""
    docs = render("policies-off")
    assert of_kind(docs, "NetworkPolicy") == []
    assert ("stranger", "redis", "6379/TCP") in hop_graph(docs)


def test_evaluator_blocks_what_a_policy_does_not_allow():
    """The evaluation itself: removing the bridge's egress rule to Kafka removes that hop."""
    docs = render("defaults")
    for doc in docs:
        if doc["kind"] == "NetworkPolicy" and doc["metadata"]["name"] == "chatroom-bridge":
            doc["spec"]["egress"] = [r for r in doc["spec"]["egress"]
                                     if not any(p.get("port") == 9092 for p in r.get("ports", []))]
    graph = hop_graph(docs)
    assert ("bridge", "kafka", "9092/TCP") not in graph
    assert ("ingest", "kafka", "9092/TCP") in graph
