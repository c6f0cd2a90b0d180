"""The charts running on the one-node cluster built here (cluster/): the project's images, built
from its Dockerfiles without a registry (cluster/images/build.sh) and imported into the node's
containerd, run as pods. The releases are installed as docs/kubernetes.md tells users (the
namespace labelled Pod Security `restricted`, enforced; redis, kafka (three brokers), then
chatroom, each with `--wait`), pointed at those images; every pod becomes Ready and `helm test` (a pod that posts a
message to ingest and reads it back from the stream service) passes. Through the cluster's ingress
controller (Traefik, serving the chart's Ingresses of its class), the page is served and messages
posted reach SSE readers as they are published, each once, in order; two people chat in
Chromium through it; and under a steady flow through it, a pod of each service, the Redis and
one of the three Kafka brokers (values-ha.yaml) killed without a grace period, and an eviction
of the last available ingest pod refused by its PodDisruptionBudget, lose, repeat or reorder
nothing for the readers (the pauses each fault caused are printed). All of it with the
NetworkPolicies enforced (kube-router's firewall), which the last tests show refusing what the
policies forbid: another namespace's pod reaching Redis, Kafka or a metrics port, a chart pod's
egress to anything but DNS and the peers its policy names."""

import json
import sys
import time
from datetime import datetime

import network_policies
import pytest
from k8s_manifests import HELM_DIR, tool

from cluster.cluster import BIN, INGRESS_CLASS, INGRESS_NAMESPACE, INGRESS_URL, NODE_IP, ROOT

# The first test may wait for the cold builds (cluster/build.sh) and the pods' start.
pytestmark = pytest.mark.timeout(3600)

NAMESPACE = "chatroom"
NAMESPACE_YAML = ROOT / "k8s" / "namespace.yaml"
REGISTRY = "localhost/chatroom-cluster/"
THROUGH_INGRESS = ROOT / "tests" / "cluster" / "through_ingress.py"
CHAT_IN_CHROMIUM = ROOT / "tests" / "cluster" / "chat_in_chromium.py"
UNDER_FLOW = ROOT / "tests" / "cluster" / "under_flow.py"
STREAM_CAP = ROOT / "tests" / "cluster" / "stream_cap.py"
AUTOSCALING = ROOT / "tests" / "cluster" / "autoscaling.py"
# The scripts above import the tests' helpers (support.py, the e2e room page) from these folders.
SCRIPT_ENV = f"PYTHONPATH={ROOT / 'tests' / 'e2e'}:{ROOT / 'tests'}"


def helm(cluster, *args, **kwargs):
    return cluster.run(tool("helm"), *args, **kwargs)


def pods(cluster):
    return json.loads(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)["items"]


def condition(pod, kind):
    return next((c for c in pod["status"].get("conditions", []) if c["type"] == kind), {})


def what_the_pods_say(cluster):
    """For a failure's message: the pods, the namespace's warnings and the log tails of the pods
    that are not ready."""
    out = [cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide", check=False).stdout,
           cluster.kubectl("get", "events", "-n", NAMESPACE, "--field-selector=type=Warning",
                           "-o", "custom-columns=OBJECT:.involvedObject.name,MESSAGE:.message",
                           check=False).stdout]
    for pod in pods(cluster):
        if condition(pod, "Ready").get("status") != "True" and pod["status"].get("phase") != "Succeeded":
            name = pod["metadata"]["name"]
            out.append(f"--- {name}\n" + cluster.kubectl("logs", "-n", NAMESPACE, name, "--all-containers",
                                                         "--tail=20", check=False).stdout)
    return "\n".join(out)


# Three brokers, as docs/kubernetes.md tells for an existing cluster: a broker may then be killed
# under the flow without losing an acknowledged message (min.insync.replicas=2).
# A per-address cap on open streams small enough to reach in a test, above what the other tests
# hold open from the one address they all come from (three readers, and those a killed stream
# pod held, until they expire).
STREAM_CONNECTIONS_PER_IP = 12
EXTRA_VALUES = {"kafka": ["-f", HELM_DIR / "kafka" / "values-ha.yaml"],
                "chatroom": ["--set-string", f"stream.env.STREAM_CONNECTIONS_PER_IP={STREAM_CONNECTIONS_PER_IP}"]}


@pytest.fixture(scope="module")
def installed(node_cluster):
    """redis, kafka (three brokers) and chatroom installed with `--wait` (helm waits for every pod Ready and for
    Kafka's post-install Job that makes the topic); the seconds each release took."""
    cluster = node_cluster
    cluster.kubectl("apply", "--server-side", "-f", NAMESPACE_YAML)
    deadline = time.monotonic() + 60
    while cluster.kubectl("get", "serviceaccount", "default", "-n", NAMESPACE, check=False).returncode:
        assert time.monotonic() < deadline, "no ServiceAccount default in the namespace"
        time.sleep(0.2)
    values = cluster.helm_values()
    seconds = {}
    for release in ("redis", "kafka", "chatroom"):
        started = time.monotonic()
        result = helm(cluster, "upgrade", "--install", release, HELM_DIR / release, "-n", NAMESPACE,
                      "--wait", "--timeout", "15m", *values[release], *EXTRA_VALUES.get(release, ()),
                      check=False, timeout=1000)
        assert result.returncode == 0, f"{release}: {result.stderr}\n{what_the_pods_say(cluster)}"
        seconds[release] = round(time.monotonic() - started)
    print(f"\nhelm upgrade --install --wait, seconds per release: {seconds}")
    return cluster


# The charts' defaults but three brokers (values-ha.yaml): one Redis, two of each of the app's components (ingest's and
# stream's second pod comes from their HorizontalPodAutoscaler's minReplicas, after the install).
EXPECTED = {"redis-": 1, "kafka-": 3, "chatroom-ingest-": 2, "chatroom-stream-": 2, "chatroom-bridge-": 2,
            "chatroom-web-": 2}


def running(cluster):
    """The pods of the releases' workloads (not those of Kafka's topic Job, which helm saw
    complete, nor `helm test`'s)."""
    return [p for p in pods(cluster)
            if not any(o["kind"] == "Job" for o in p["metadata"].get("ownerReferences", []))
            and "helm.sh/hook" not in p["metadata"].get("annotations", {})]


def counts(pods):
    return {prefix: len([p for p in pods if p["metadata"]["name"].startswith(prefix)]) for prefix in EXPECTED}


def test_every_pod_of_the_three_releases_runs_the_images_built_here_and_is_ready(installed):
    deadline = time.monotonic() + 300
    while True:  # until the autoscalers have added their pods and these are ready too
        now = running(installed)
        not_ready = [p["metadata"]["name"] for p in now if condition(p, "Ready").get("status") != "True"]
        if (counts(now) == EXPECTED and not not_ready) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert counts(now) == EXPECTED, sorted(p["metadata"]["name"] for p in now)
    assert not not_ready, f"not ready: {not_ready}\n{what_the_pods_say(installed)}"
    images = {s["image"] for p in now for s in p["status"]["containerStatuses"]}
    assert all(image.startswith(REGISTRY) for image in images), images
    ready_after = {}
    for pod in now:
        created = datetime.fromisoformat(pod["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        ready = datetime.fromisoformat(condition(pod, "Ready")["lastTransitionTime"].replace("Z", "+00:00"))
        ready_after[pod["metadata"]["name"]] = round((ready - created).total_seconds())
    print(f"\nseconds from a pod's creation to Ready: {ready_after}")


# What the JMX exporter's agent serves, read from inside the cluster's network namespace.
FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
UNDER_REPLICATED = "kafka_server_replicamanager_underreplicatedpartitions"
ACTIVE_CONTROLLER = "kafka_controller_kafkacontroller_activecontrollercount"
BROKER_GAUGES = (UNDER_REPLICATED, ACTIVE_CONTROLLER)


def samples(text):
    """{name: value} of the unlabelled samples of a Prometheus text exposition."""
    pairs = (line.split() for line in text.splitlines() if line and not line.startswith("#") and "{" not in line)
    return {pair[0]: float(pair[1]) for pair in pairs if len(pair) >= 2}


def test_the_brokers_metrics_endpoints_say_one_is_the_controller_with_nothing_under_replicated(installed):
    # The cluster installs the kafka chart with metrics.enabled (its image has the agent).
    deadline = time.monotonic() + 120
    while True:  # the gauges settle once the brokers have caught up with the quorum
        seen = {}
        for n in range(EXPECTED["kafka-"]):
            pod = json.loads(installed.kubectl("get", "pod", f"kafka-{n}", "-n", NAMESPACE, "-o", "json").stdout)
            port = next(p["containerPort"] for p in pod["spec"]["containers"][0]["ports"] if p["name"] == "metrics")
            url = f"http://{pod['status']['podIP']}:{port}/metrics"
            result = installed.run(sys.executable, "-c", FETCH, url, check=False, timeout=30)
            assert result.returncode == 0 or time.monotonic() < deadline, f"{url}: {result.stderr}"
            seen[f"kafka-{n}"] = {name: value for name, value in samples(result.stdout).items()
                                  if name in BROKER_GAUGES}
        under_replicated = {pod: gauges.get(UNDER_REPLICATED) for pod, gauges in seen.items()}
        controllers = sum(gauges.get(ACTIVE_CONTROLLER, 0) for gauges in seen.values())
        healthy = all(value == 0 for value in under_replicated.values()) and controllers == 1
        if healthy or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert healthy, seen
    print(f"\nbrokers' metrics: {seen}")


def test_helm_test_posts_a_message_and_reads_it_back_from_the_stream(installed):
    # As docs/kubernetes.md tells users, with --logs: it asks for a pod's log by the name of
    # every test hook, so the chart names no hook that is not the test pod's.
    result = helm(installed, "test", "chatroom", "-n", NAMESPACE, "--logs", "--timeout", "5m", check=False,
                  timeout=400)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{what_the_pods_say(installed)}"
    assert "Phase:          Succeeded" in result.stdout, result.stdout
    assert "PASS: message 0 came back on the stream" in result.stdout, result.stdout


def pods_selected(cluster, namespace, peer):
    """The pods a NetworkPolicy peer of a policy in ``namespace`` selects (matchLabels only)."""
    def selector(part):
        assert not part.get("matchExpressions"), peer
        return ",".join(f"{k}={v}" for k, v in part.get("matchLabels", {}).items())
    if "namespaceSelector" in peer:
        found = json.loads(cluster.kubectl("get", "namespaces", "-l", selector(peer["namespaceSelector"]),
                                           "-o", "json").stdout)["items"]
        namespaces = [n["metadata"]["name"] for n in found]
    else:
        namespaces = [namespace]
    return [p for ns in namespaces
            for p in json.loads(cluster.kubectl("get", "pods", "-n", ns, "-l", selector(peer.get("podSelector", {})),
                                                "-o", "json").stdout)["items"]]


def test_dns_and_the_ingress_controller_are_pods_that_the_charts_network_policies_select(installed):
    # CoreDNS: the Service kube-dns in kube-system, the pods' resolver (kubelet's clusterDNS),
    # and its pod, from the image built here. Every pod resolving a Service's name (the app's
    # pods finding Kafka and Redis, helm test's finding ingest) asked it.
    dns = json.loads(installed.kubectl("get", "service", "kube-dns", "-n", "kube-system", "-o", "json").stdout)
    assert dns["spec"]["selector"] == {"k8s-app": "kube-dns"}
    for namespace, selector, image in (("kube-system", "k8s-app=kube-dns", "coredns"),
                                       (INGRESS_NAMESPACE, "app.kubernetes.io/name=traefik", "traefik")):
        found = json.loads(installed.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout)
        assert [condition(p, "Ready").get("status") for p in found["items"]] == ["True"], found["items"]
        assert found["items"][0]["spec"]["containers"][0]["image"].startswith(f"{REGISTRY}{image}:")
    # Every peer the chart's policies name is a pod that exists here (the DNS pods in kube-system,
    # the ingress controller's namespace, Kafka, Redis, the app's own, helm test's pod), but
    # Prometheus's: none runs in this cluster.
    policies = json.loads(installed.kubectl("get", "networkpolicies", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    unmatched, matched = [], {}
    for policy in policies:
        spec = policy["spec"]
        peers = [peer for rule in spec.get("ingress", []) for peer in rule.get("from", [])] + \
                [peer for rule in spec.get("egress", []) for peer in rule.get("to", [])]
        for peer in peers:
            if "ipBlock" in peer:
                continue
            selected = [p["metadata"]["name"] for p in pods_selected(installed, NAMESPACE, peer)]
            if selected:
                matched.setdefault(json.dumps(peer, sort_keys=True), set()).update(selected)
            else:
                unmatched.append(peer)
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    assert all(peer == monitoring for peer in unmatched), unmatched
    for namespace in ("kube-system", INGRESS_NAMESPACE):
        peer = next(p for p in matched if f'"kubernetes.io/metadata.name": "{namespace}"' in p)
        assert matched[peer], peer
    print(f"\nthe policies' peers and the pods they select: {({k: sorted(v) for k, v in matched.items()})}")


def test_metrics_server_serves_the_pods_usage_and_the_stream_autoscaler_reads_it(installed):
    # metrics-server scrapes the kubelet every 15 s (a pod started since has no figures until the
    # next scrape); the autoscaler reads metrics.k8s.io every 15 s.
    deadline = time.monotonic() + 300
    while True:
        top = installed.kubectl("top", "pods", "-n", NAMESPACE, "--no-headers", check=False)
        used = {line.split()[0]: line.split()[1:3] for line in top.stdout.splitlines()} if top.returncode == 0 else {}
        every_pod = {p["metadata"]["name"] for p in running(installed)} <= set(used)
        hpa = json.loads(installed.kubectl("get", "hpa", "chatroom-stream", "-n", NAMESPACE, "-o", "json").stdout)
        cpu = [m["resource"]["current"] for m in hpa["status"].get("currentMetrics") or []
               if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
        if (every_pod and cpu and "averageUtilization" in cpu[0]) or time.monotonic() > deadline:
            break
        time.sleep(2)
    system = installed.kubectl("get", "pods", "-n", "kube-system", "-o", "wide", check=False).stdout
    assert top.returncode == 0, f"{top.stderr}\n{system}"
    assert every_pod, used
    assert cpu and "averageUtilization" in cpu[0], hpa["status"]
    active = next(c for c in hpa["status"]["conditions"] if c["type"] == "ScalingActive")
    assert active["status"] == "True", active
    print(f"\nkubectl top pods: {used}\nthe stream autoscaler reads: {cpu[0]}")


def test_the_ingress_controller_serves_the_charts_ingresses_and_says_so_in_their_status(installed):
    deadline = time.monotonic() + 120
    while True:
        ingresses = json.loads(installed.kubectl("get", "ingress", "-n", NAMESPACE, "-o", "json").stdout)["items"]
        addresses = {i["metadata"]["name"]: [a.get("ip") for a in
                                             i.get("status", {}).get("loadBalancer", {}).get("ingress", [])]
                     for i in ingresses}
        if all(a == [NODE_IP] for a in addresses.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert addresses == {"chatroom": [NODE_IP], "chatroom-stream": [NODE_IP]}, addresses
    assert {i["spec"]["ingressClassName"] for i in ingresses} == {INGRESS_CLASS}
    # The annotations for users of ingress-nginx stay on the stream's Ingress.
    stream = next(i for i in ingresses if i["metadata"]["name"] == "chatroom-stream")
    assert stream["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"


def test_messages_posted_through_the_ingress_reach_readers_through_it_as_published_once_in_order(installed):
    # Inside the cluster's network namespace, where the ingress listens: 3 readers, 20 messages,
    # each posted once every reader has the one before.
    result = installed.run("env", SCRIPT_ENV, sys.executable, THROUGH_INGRESS, INGRESS_URL, 3, 20, timeout=900)
    seen = json.loads(result.stdout)
    assert seen["page"]["status"] == 200 and seen["page"]["type"].startswith("text/html"), seen["page"]
    assert seen["page"]["title"], "the page through the ingress is not the chat's"
    assert seen["stream"]["status"] == [200] * 3, seen["stream"]
    assert all(t.startswith("text/event-stream") for t in seen["stream"]["type"]), seen["stream"]
    assert seen["held_back"] is None, f"not delivered before the next post: {seen['held_back']}"
    assert len(seen["acked"]) == 20
    assert seen["readers"] == [seen["acked"]] * 3


def test_two_people_chat_in_chromium_through_the_ingress(installed):
    # Chromium runs inside the cluster's network namespace, where the ingress listens.
    result = installed.run("env", SCRIPT_ENV, sys.executable, CHAT_IN_CHROMIUM, INGRESS_URL, timeout=600, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    seen = json.loads(result.stdout)
    expected = [{"user": "ann", "text": "hello through the cluster"}, {"user": "bob", "text": "hi ann, bob here"}]
    assert seen["shown"] == {"ann": expected, "bob": expected}
    assert seen["ann_people"].startswith("2 here:"), seen["ann_people"]  # presence, through the ingress
    assert not seen["problems"], seen["problems"]


def test_pods_killed_and_a_refused_eviction_under_a_steady_flow_lose_repeat_or_reorder_nothing(installed):
    # Readers and poster through the ingress, in the cluster's network namespace; the script
    # kills (no grace period) an ingest, a stream, a bridge, the Redis and a Kafka broker pod in
    # turn while messages flow, then evicts an ingest pod and has the eviction of the last one
    # refused by its PodDisruptionBudget.
    result = installed.run("env", SCRIPT_ENV, f"KUBECTL={BIN / 'kubectl'}", sys.executable, UNDER_FLOW, INGRESS_URL,
                           NAMESPACE, "chatroom", "redis", "kafka", timeout=1500, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{what_the_pods_say(installed)}"
    seen = json.loads(result.stdout)
    print(f"\n{len(seen['acked'])} messages acknowledged, {seen['retries']} posts retried, "
          f"connects per reader: {seen['connects']}")
    for fault in seen["faults"]:
        print(f"  {fault['fault']}: replacement Ready after {fault['ready_after_s']} s; longest pause between "
              f"acknowledgements {fault['longest_ack_pause_s']} s, between messages to a reader "
              f"{fault['longest_read_pause_s']} s")
    assert len(seen["faults"]) == 6
    assert "refused" in seen["faults"][-1]["fault"] and "disruption budget" in seen["faults"][-1]["fault"]
    acked = seen["acked"]
    assert acked == [f"message {n}" for n in range(len(acked))] and len(acked) >= 12 * 20
    for texts in seen["readers"]:  # every acknowledged message once, in the order posted
        missing = [t for t in acked if t not in texts]
        assert texts == acked, (f"{len(texts)} received, {len(acked)} acknowledged; missing {missing[:10]}; "
                                f"{len(texts) - len(set(texts))} twice")
    assert all(seen["ids_rise"]), seen["ids_rise"]


def test_the_stream_service_caps_open_streams_per_address_behind_the_ingress(installed):
    # From one address through Traefik (which passes it in X-Forwarded-For): the stream service
    # itself refuses the stream over its cap (STREAM_CONNECTIONS_PER_IP), whatever the ingress.
    result = installed.run("env", SCRIPT_ENV, sys.executable, STREAM_CAP, INGRESS_URL,
                           STREAM_CONNECTIONS_PER_IP + 1, timeout=300, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    seen = json.loads(result.stdout)
    print(f"\n{seen['opened']} streams open from one address, then {seen['refusal']}")
    assert seen["refusal"] is not None, f"{seen['opened']} streams open, none refused"
    assert seen["refusal"]["status"] == 429, seen["refusal"]
    assert json.loads(seen["refusal"]["body"])["error"]["code"] == "too_many_streams", seen["refusal"]
    assert seen["refusal"]["retry_after"], seen["refusal"]
    assert 0 < seen["opened"] <= STREAM_CONNECTIONS_PER_IP, seen


def test_the_stream_autoscaler_scales_out_and_in_on_metrics_under_a_flow_losing_nothing(installed):
    # Last: it upgrades the release (the stream autoscaler's target and bounds).
    result = installed.run("env", SCRIPT_ENV, f"KUBECTL={BIN / 'kubectl'}", f"HELM={tool('helm')}", sys.executable,
                           AUTOSCALING, INGRESS_URL, NAMESPACE, "chatroom", HELM_DIR / "chatroom", timeout=1200,
                           check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{what_the_pods_say(installed)}"
    seen = json.loads(result.stdout)
    print(f"\n{len(seen['acked'])} messages acknowledged, {seen['retries']} posts retried, "
          f"connects per reader: {seen['connects']}")
    for step in seen["steps"]:
        print(f"  stream scaled to {step['to']} pods after {step['after_s']} s; longest pause between "
              f"acknowledgements {step['longest_ack_pause_s']} s, between messages to a reader "
              f"{step['longest_read_pause_s']} s")
    print(f"  readers connected after the scale-out: connects {seen['late_connects']}")
    acked = seen["acked"]
    assert acked == [f"message {n}" for n in range(len(acked))] and len(acked) >= 4 * 20
    for texts in seen["readers"]:
        assert texts == acked, f"{len(texts)} received, {len(acked)} acknowledged"
    # Those connected after the scale-out: everything from their first message on, once, in order;
    # one of them was on the pod removed and resumed on another.
    for texts in seen["late_readers"]:
        assert texts and texts == acked[acked.index(texts[0]):], f"{len(texts)} received"
    assert max(seen["late_connects"]) > 1, seen["late_connects"]
    assert all(seen["ids_rise"]), seen["ids_rise"]


# --- The NetworkPolicies, enforced: kube-router's firewall (cluster/system_pods.py) has filtered every
# packet of the tests above since before the releases were installed; these prove it does
# (tests/cluster/network_policies.py).
ELSEWHERE = "elsewhere"  # a namespace no policy names
MONITORING = "monitoring"  # the namespace the charts admit as Prometheus's (networkPolicy.monitoring)


def release_pod(cluster, prefix):
    return next(p for p in running(cluster) if p["metadata"]["name"].startswith(prefix)
                and condition(p, "Ready").get("status") == "True")


def pods_of(cluster, namespace, selector):
    return json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout)["items"]


@pytest.fixture(scope="module")
def probe_pods(installed):
    """A waiting pod in ELSEWHERE and in MONITORING, of the image the ingest pods run."""
    image = release_pod(installed, "chatroom-ingest-")["spec"]["containers"][0]["image"]
    network_policies.start_probe_pods(installed, image, (ELSEWHERE, MONITORING))
    yield installed
    network_policies.delete_namespaces(installed, (ELSEWHERE, MONITORING))


def test_kube_router_is_ready_and_its_rules_are_beside_kube_proxys(installed):
    router = pods_of(installed, "kube-system", "k8s-app=kube-router")
    assert [condition(p, "Ready").get("status") for p in router] == ["True"], router
    assert router[0]["spec"]["hostNetwork"] and router[0]["spec"]["containers"][0]["image"].startswith(
        f"{REGISTRY}kube-router:")
    # In the backend this machine's iptables (kube-proxy's) uses: kube-proxy's chains and
    # kube-router's (its firewall, one chain per pod a policy selects) in the same table.
    chains = network_policies.kube_router_chains_beside_kube_proxys(installed)
    assert {"KUBE-SERVICES", "KUBE-ROUTER-FORWARD"} <= set(chains), chains
    assert any(c.startswith("KUBE-POD-FW-") for c in chains), chains


def test_a_pod_of_another_namespace_reaches_neither_redis_nor_kafka_nor_a_metrics_port(probe_pods):
    cluster = probe_pods
    redis = network_policies.pod_address(release_pod(cluster, "redis-"), "redis")
    broker_pod = release_pod(cluster, "kafka-")
    broker = network_policies.pod_address(broker_pod, "broker")
    broker_metrics = network_policies.pod_address(broker_pod, "metrics")
    stream = network_policies.pod_address(release_pod(cluster, "chatroom-stream-"), "http")  # /metrics on it
    started = time.monotonic()
    # The same connections from the peers the policies name: a client of both (an ingest pod), and
    # a pod of the monitoring namespace for the metrics ports. So these cannot pass for refusals.
    client = network_policies.probe(cluster, NAMESPACE, release_pod(cluster, "chatroom-ingest-")["metadata"]["name"],
                                    [redis, broker])["connect"]
    scraper = network_policies.probe(cluster, MONITORING, "probe", [stream, broker_metrics])["connect"]
    other = network_policies.probe(cluster, ELSEWHERE, "probe", [redis, broker, stream, broker_metrics])["connect"]
    print(f"\nprobes in {time.monotonic() - started:.1f} s; from ingest: {client}; from {MONITORING}: {scraper}; "
          f"from {ELSEWHERE}: {other}")
    assert set(client.values()) == {"open"}, client
    assert set(scraper.values()) == {"open"}, scraper
    assert "open" not in other.values(), other
    assert len(other) == 4, other


def test_a_chart_pods_egress_is_refused_but_to_dns_and_the_peers_its_policy_names(probe_pods):
    cluster = probe_pods
    ingest = release_pod(cluster, "chatroom-ingest-")["metadata"]["name"]
    named = [network_policies.pod_address(release_pod(cluster, "redis-"), "redis"),
             network_policies.pod_address(release_pod(cluster, "kafka-"), "broker")]
    # Open to a pod that no policy restricts (ELSEWHERE's): so a refusal below is ingest's policy.
    unnamed = [("10.96.0.1", 443),  # the API server, through the Service `kubernetes`
               network_policies.pod_address(pods_of(cluster, INGRESS_NAMESPACE, "app.kubernetes.io/name=traefik")[0],
                                            "web"),
               (pods_of(cluster, "kube-system", "k8s-app=kube-dns")[0]["status"]["podIP"], 8080)]  # DNS's health
    started = time.monotonic()
    names = ["redis", "kafka-bootstrap", "kafka-0.kafka-headless", "kubernetes.default.svc.cluster.local"]
    seen = network_policies.probe(cluster, NAMESPACE, ingest, named + unnamed, names)
    unrestricted = network_policies.probe(cluster, ELSEWHERE, "probe", unnamed)["connect"]
    print(f"\nprobes in {time.monotonic() - started:.1f} s; from {ingest}: {seen}; from {ELSEWHERE}: {unrestricted}")
    assert all(isinstance(ips, list) and ips for ips in seen["resolve"].values()), seen["resolve"]
    assert [seen["connect"][f"{h}:{p}"] for h, p in named] == ["open", "open"], seen["connect"]
    assert set(unrestricted.values()) == {"open"}, unrestricted
    refused = {f"{h}:{p}": seen["connect"][f"{h}:{p}"] for h, p in unnamed}
    assert "open" not in refused.values(), refused


REDIS_CLUSTER = ROOT / "tests" / "cluster" / "redis_cluster.py"


def test_switched_to_redis_cluster_a_primary_killed_under_a_flow_loses_repeats_or_reorders_nothing(installed):
    # Last: it replaces the redis release with the chart's cluster mode (six nodes) and puts the app in it.
    result = installed.run("env", SCRIPT_ENV, f"KUBECTL={BIN / 'kubectl'}", f"HELM={tool('helm')}", sys.executable,
                           REDIS_CLUSTER, INGRESS_URL, NAMESPACE, "chatroom", "redis", HELM_DIR,
                           installed.run_dir / "volumes", json.dumps(installed.helm_values()["redis"]), timeout=1800,
                           check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{what_the_pods_say(installed)}"
    seen = json.loads(result.stdout)
    print(f"\nswitched to Redis Cluster in {seen['switched_s']} s; {len(seen['acked'])} messages acknowledged, "
          f"{seen['retries']} posts retried, connects per reader: {seen['connects']}")
    for fault in seen["faults"]:
        took_over = (f"replica took over after {fault['new_primary_after_s']} s, "
                     if fault["new_primary_after_s"] is not None else "")
        print(f"  {fault['fault']}: {took_over}the new pod Ready "
              f"after {fault['ready_after_s']} s, every node ok after {fault['cluster_ok_after_s']} s; longest pause "
              f"between acknowledgements {fault['longest_ack_pause_s']} s, between messages to a reader "
              f"{fault['longest_read_pause_s']} s")
    assert seen["faults"][-1]["failed_over"], seen["faults"][-1]
    acked = seen["acked"]
    assert acked == [f"message {n}" for n in range(len(acked))] and len(acked) >= 3 * 20
    for texts in seen["readers"]:  # every acknowledged message once, in the order posted
        assert texts == acked, f"{len(texts)} received, {len(acked)} acknowledged"
    assert all(seen["ids_rise"]), seen["ids_rise"]
