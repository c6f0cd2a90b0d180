"""What every pod the charts run must have: requests and limits, probes, a non-root user,
a read-only root filesystem, no privilege escalation, no capabilities, the RuntimeDefault
seccomp profile; i.e. what Pod Security Admission's "restricted" profile enforces, and more."""

import re

import pytest
from k8s_manifests import (
    HELM_DIR,
    ROOT,
    SCENARIOS,
    containers,
    helm_template,
    is_hook,
    named,
    parse,
    pod_spec,
    render,
    workloads,
)

# Volume types the restricted profile allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


def all_containers(scenario):
    for doc in workloads(render(scenario)):
        for container in containers(doc):
            yield doc, container


def cid(doc, container):
    return f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"


def probe_handler(probe):
    """What a probe checks, without its timings."""
    return {k: v for k, v in probe.items() if k in ("httpGet", "tcpSocket", "exec", "grpc")}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_container_has_requests_and_limits(scenario):
    for doc, container in all_containers(scenario):
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory", "ephemeral-storage"):
                assert resource in resources.get(kind, {}), f"{cid(doc, container)}: no {kind}.{resource}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_long_running_containers_have_distinct_liveness_and_readiness_probes(scenario):
    """Jobs and `helm test` pods run to completion and have none; every server has both,
    and they differ (a liveness probe that checks dependencies restarts healthy pods)."""
    for doc in workloads(render(scenario)):
        if doc["kind"] in ("Job", "Pod"):
            continue
        for container in pod_spec(doc)["containers"]:
            liveness, readiness = container.get("livenessProbe"), container.get("readinessProbe")
            assert liveness and readiness, f"{cid(doc, container)}: missing a probe"
            assert probe_handler(liveness) != probe_handler(readiness), f"{cid(doc, container)}: identical probes"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pod_security_restricted(scenario):
    """The checks of the "restricted" Pod Security Standard, pod by pod, container by container."""
    for doc in workloads(render(scenario)):
        spec = pod_spec(doc)
        pod_sc = spec.get("securityContext", {})
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", doc["metadata"]["name"]
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= RESTRICTED_VOLUMES, f"{doc['metadata']['name']}: volume {volume}"
        for container in containers(doc):
            sc = container.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, cid(doc, container)
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], cid(doc, container)
            assert not sc.get("capabilities", {}).get("add"), cid(doc, container)
            assert not sc.get("privileged"), cid(doc, container)
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, cid(doc, container)
            user = sc.get("runAsUser", pod_sc.get("runAsUser"))
            assert user is not None and user > 10000, f"{cid(doc, container)}: runs as {user}"
            assert not container.get("ports") or all("hostPort" not in p for p in container["ports"])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_read_only_root_filesystem_with_writable_scratch(scenario):
    for doc, container in all_containers(scenario):
        sc = container.get("securityContext", {})
        assert sc.get("readOnlyRootFilesystem") is True, cid(doc, container)
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        if container["name"] in ("ingest", "bridge", "stream", "web", "kafka", "topics"):
            assert "/tmp" in mounts, f"{cid(doc, container)}: no writable /tmp"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_pod_gets_an_api_token_or_service_links(scenario):
    docs = render(scenario)
    for doc in workloads(docs):
        spec = pod_spec(doc)
        assert spec.get("automountServiceAccountToken") is False, doc["metadata"]["name"]
        # Service links would put KAFKA_* variables into the Kafka image's broker config.
        assert spec.get("enableServiceLinks") is False, doc["metadata"]["name"]
    for account in (d for d in docs if d["kind"] == "ServiceAccount"):
        assert account.get("automountServiceAccountToken") is False


def test_python_services_write_metrics_to_an_emptydir():
    docs = render("defaults")
    for name in ("chatroom-ingest", "chatroom-stream", "chatroom-bridge"):
        kind = "StatefulSet" if name.endswith("bridge") else "Deployment"
        doc = named(docs, kind, name)
        config = named(docs, "ConfigMap", name)["data"]
        container = pod_spec(doc)["containers"][0]
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == config["PROMETHEUS_MULTIPROC_DIR"])
        volume = next(v for v in pod_spec(doc)["volumes"] if v["name"] == mount["name"])
        assert "emptyDir" in volume


def graceful_timeout(service):
    """gunicorn's graceful_timeout in services/<service>/gunicorn.conf.py (a literal or an env default)."""
    text = (ROOT / "services" / service / "gunicorn.conf.py").read_text()
    match = re.search(r"^graceful_timeout\s*=\s*(?:env_int\(\"(\w+)\",\s*(\d+)\)|(\d+))", text, re.M)
    assert match, f"no graceful_timeout in {service}'s gunicorn.conf.py"
    return match.group(1), int(match.group(2) or match.group(3))


@pytest.mark.parametrize("service", ["ingest", "stream", "bridge"])
def test_pods_get_time_to_drain_before_they_are_killed(service):
    """preStop pause + gunicorn's graceful timeout (the stream's SSE drain) < terminationGracePeriodSeconds,
    or Kubernetes kills workers mid-drain and clients see broken streams."""
    docs = render("defaults")
    kind = "StatefulSet" if service == "bridge" else "Deployment"
    doc = named(docs, kind, f"chatroom-{service}")
    spec = pod_spec(doc)
    container = spec["containers"][0]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    env_name, timeout = graceful_timeout(service)
    config = named(docs, "ConfigMap", f"chatroom-{service}")["data"]
    if env_name and env_name in config:
        timeout = int(config[env_name])
    assert pause > 0
    assert spec["terminationGracePeriodSeconds"] > pause + timeout


def test_several_replicas_spread_over_nodes():
    docs = render("defaults")
    for doc in workloads(docs):
        replicas = doc["spec"].get("replicas")
        autoscaled = replicas is None and doc["kind"] == "Deployment"
        if doc["kind"] in ("Deployment", "StatefulSet") and (autoscaled or replicas > 1):
            terms = pod_spec(doc)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
            assert terms[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname", doc["metadata"]["name"]


def test_every_workload_has_a_disruption_budget():
    docs = render("ha")
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for doc in workloads(docs):
        if doc["kind"] in ("Job", "Pod"):
            continue
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert any(all(labels.get(k) == v for k, v in b["spec"]["selector"]["matchLabels"].items()) for b in budgets), \
            doc["metadata"]["name"]


def test_ingest_and_stream_autoscale_and_leave_replicas_to_the_hpa():
    docs = render("defaults")
    for name in ("chatroom-ingest", "chatroom-stream"):
        hpa = named(docs, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert hpa["spec"]["minReplicas"] >= 2
        assert "replicas" not in named(docs, "Deployment", name)["spec"]
    dev = render("dev")
    assert not [d for d in dev if d["kind"] == "HorizontalPodAutoscaler"]
    assert named(dev, "Deployment", "chatroom-ingest")["spec"]["replicas"] == 1


def test_a_config_change_rolls_only_the_pods_that_read_it():
    base = parse(helm_template(HELM_DIR / "chatroom", "chatroom"))
    changed = parse(helm_template(HELM_DIR / "chatroom", "chatroom", ["--set", "stream.env.STREAM_HEARTBEAT_S=5"]))

    def checksum(docs, kind, name):
        return named(docs, kind, name)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(base, "Deployment", "chatroom-stream") != checksum(changed, "Deployment", "chatroom-stream")
    assert checksum(base, "Deployment", "chatroom-ingest") == checksum(changed, "Deployment", "chatroom-ingest")
    assert named(changed, "ConfigMap", "chatroom-stream")["data"]["STREAM_HEARTBEAT_S"] == "5"


def test_bridge_static_membership_id_is_the_stable_pod_name():
    doc = named(render("defaults"), "StatefulSet", "chatroom-bridge")
    env = {e["name"]: e for e in pod_spec(doc)["containers"][0]["env"]}
    assert env["BRIDGE_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_services_bind_all_interfaces_on_their_ports():
    docs = render("defaults")
    for service, port in (("ingest", 8001), ("stream", 8002), ("bridge", 8003)):
        config = named(docs, "ConfigMap", f"chatroom-{service}")["data"]
        assert config[f"{service.upper()}_BIND"] == f"0.0.0.0:{port}"
        assert config["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-bootstrap:9092"
        assert config["KAFKA_TOPIC"] == "chat.messages"


def test_hooks_are_only_the_topic_job_and_the_helm_test():
    hooks = {(d["kind"], d["metadata"]["name"]) for d in render("defaults") if is_hook(d)}
    assert ("Job", "kafka-topics") in hooks
    assert ("Pod", "chatroom-test-roundtrip") in hooks
    assert all(kind in ("Job", "Pod", "ConfigMap", "NetworkPolicy") for kind, _ in hooks)


def test_namespace_enforces_pod_security_restricted():
    import yaml
    namespace = yaml.safe_load((ROOT / "k8s" / "namespace.yaml").read_text())
    labels = namespace["metadata"]["labels"]
    assert namespace["metadata"]["name"] == "chatroom"
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_helm_test_pod_stays_for_its_logs():
    """`helm test --logs` reads the pod's log after it finished: it must not be deleted on success."""
    pod = named(render("defaults"), "Pod", "chatroom-test-roundtrip")
    annotations = pod["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert pod["spec"]["restartPolicy"] == "Never"
