"""The charts against a real API server (Kubernetes built from source, cluster/): every
manifest they render is admitted, with Pod Security Admission enforcing `restricted`, and the
releases install, upgrade and roll back with Helm as docs/kubernetes.md tells users to.

No node runs in this cluster: the controllers make the workloads' pods (and Pod Security
admission judges them), but none is scheduled or starts (docs/kubernetes.md)."""

import base64
import json
import time

import pytest
import yaml
from k8s_manifests import CHARTS, HELM_DIR, RELEASES, SCENARIOS, helm_template, parse, tool

from cluster.cluster import BIN, ROOT, kubernetes_version

# The first test may wait for the cold build of Kubernetes (cluster/build.sh).
pytestmark = pytest.mark.timeout(3600)

NAMESPACE_YAML = ROOT / "k8s" / "namespace.yaml"


def restricted_namespace(cluster, name):
    """A namespace labelled like k8s/namespace.yaml: Pod Security `restricted`, enforced."""
    doc = yaml.safe_load(NAMESPACE_YAML.read_text())
    doc["metadata"]["name"] = name
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(doc))
    wait_for_default_service_account(cluster, name)


def wait_for_default_service_account(cluster, namespace, timeout=60):
    """Pods without serviceAccountName (the `helm test` pod) are refused until the controller
    manager has made the namespace's ServiceAccount `default`."""
    deadline = time.monotonic() + timeout
    while cluster.kubectl("get", "serviceaccount", "default", "-n", namespace, check=False).returncode != 0:
        assert time.monotonic() < deadline, f"no ServiceAccount default in {namespace} after {timeout}s"
        time.sleep(0.2)


def objects(cluster, namespace, kind):
    return json.loads(cluster.kubectl("get", kind, "-n", namespace, "-o", "json").stdout)["items"]


def wait_for_pods_of_every_workload(cluster, namespace, timeout=120):
    """The controllers make each Deployment's, StatefulSet's and Job's first pod, which Pod
    Security admission (enforce) would refuse if it broke `restricted`: returns the workloads
    without a pod at the end, with why (the ReplicaSets' and Jobs' failure conditions)."""
    deadline = time.monotonic() + timeout
    while True:
        missing = [f"{w['kind']}/{w['metadata']['name']}"
                   for kind in ("deployments", "statefulsets", "jobs")
                   for w in objects(cluster, namespace, kind)
                   if not (w["status"].get("replicas") or w["status"].get("active")
                           or w["status"].get("succeeded") or w["status"].get("failed"))]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if missing:
        events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector=type=Warning",
                                 "-o", "custom-columns=OBJECT:.involvedObject.name,MESSAGE:.message").stdout
        return missing, events
    return [], ""


def helm(cluster, *args, **kwargs):
    return cluster.run(tool("helm"), *args, **kwargs)


@pytest.fixture(scope="module")
def crds(cluster):
    """The custom resources the charts can render (HTTPRoute, ServiceMonitor, PodMonitor,
    PrometheusRule), defined by their publishers' own CRDs."""
    files = sorted((BIN / "crds").glob("*.yaml"))
    assert len(files) == 4, files
    for path in files:
        cluster.kubectl("apply", "--server-side", "-f", path)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    *[f"crd/{yaml.safe_load(p.read_text())['metadata']['name']}" for p in files])


def test_the_api_server_reports_the_release_it_was_built_from(cluster):
    """/version is what Helm checks the charts' kubeVersion against."""
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == kubernetes_version()
    assert version["clientVersion"]["gitVersion"] == kubernetes_version()


def test_pod_security_admission_refuses_a_pod_restricted_forbids(cluster):
    restricted_namespace(cluster, "psa-check")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root"},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}}
    result = cluster.kubectl("apply", "-n", "psa-check", "-f", "-", input=json.dumps(pod), check=False)
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in result.stderr, result.stderr
    assert cluster.kubectl("get", "pods", "-n", "psa-check", "-o", "name").stdout == ""


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_rendered_manifest_is_admitted(cluster, crds, scenario):
    """Server-side apply of the three charts (hooks and `helm test` pods included) into a
    restricted namespace: every object is stored, and no Pod Security warning is given (for
    Deployments, StatefulSets and Jobs the enforce label only warns; their pods would be
    refused)."""
    namespace = f"apply-{scenario}"
    restricted_namespace(cluster, namespace)
    version = kubernetes_version().lstrip("v")
    text = "\n---\n".join(
        helm_template(HELM_DIR / chart, RELEASES[chart], SCENARIOS[scenario].get(chart, []), version)
        for chart in CHARTS)
    docs = parse(text)
    applied = cluster.kubectl("apply", "--server-side", "--field-manager=chatroom-tests",
                              "-n", namespace, "-f", "-", input=text)
    assert "Warning" not in applied.stderr, applied.stderr
    stored = cluster.kubectl("get", "-n", namespace, "-f", "-", "-o", "name", input=text).stdout.split()
    assert len(stored) == len(docs)
    missing, why = wait_for_pods_of_every_workload(cluster, namespace)
    assert not missing, f"no pod made for {missing}:\n{why}"


def data(cluster, namespace, kind, name):
    return json.loads(cluster.kubectl("get", "-n", namespace, kind, name, "-o", "json").stdout)["data"]


def test_helm_install_upgrade_and_rollback_keep_the_generated_secrets(cluster):
    """As docs/kubernetes.md installs: the namespace, then redis, kafka, chatroom. The session
    key and the Redis password are made at install (by `lookup`, which only a live cluster
    answers) and kept by upgrades and a rollback. Kafka's post-install topic Job needs running
    brokers, so its hooks are left out here (--no-hooks); nothing waits for pods (no node)."""
    cluster.kubectl("apply", "--server-side", "-f", NAMESPACE_YAML)
    ns = ("-n", "chatroom")
    helm(cluster, "upgrade", "--install", "redis", HELM_DIR / "redis", *ns)
    helm(cluster, "upgrade", "--install", "kafka", HELM_DIR / "kafka", *ns, "--no-hooks")
    helm(cluster, "upgrade", "--install", "chatroom", HELM_DIR / "chatroom", *ns)
    for release in ("redis", "kafka", "chatroom"):
        status = json.loads(helm(cluster, "status", release, *ns, "-o", "json").stdout)
        assert status["info"]["status"] == "deployed", status["info"]
    missing, why = wait_for_pods_of_every_workload(cluster, "chatroom")
    assert not missing, f"no pod made for {missing}:\n{why}"

    session = data(cluster, "chatroom", "secret", "chatroom-session")
    password = data(cluster, "chatroom", "secret", "redis")
    assert len(base64.b64decode(session["session-secret"])) == 48
    assert len(base64.b64decode(password["password"])) == 32
    assert data(cluster, "chatroom", "configmap", "chatroom-ingest")["LOG_LEVEL"] == "INFO"

    helm(cluster, "upgrade", "redis", HELM_DIR / "redis", *ns)
    helm(cluster, "upgrade", "chatroom", HELM_DIR / "chatroom", *ns, "--reuse-values",
         "--set", "config.LOG_LEVEL=DEBUG")
    assert data(cluster, "chatroom", "configmap", "chatroom-ingest")["LOG_LEVEL"] == "DEBUG"
    assert data(cluster, "chatroom", "secret", "chatroom-session") == session
    assert data(cluster, "chatroom", "secret", "redis") == password

    helm(cluster, "rollback", "chatroom", "1", *ns)
    assert data(cluster, "chatroom", "configmap", "chatroom-ingest")["LOG_LEVEL"] == "INFO"
    assert data(cluster, "chatroom", "secret", "chatroom-session") == session
    history = json.loads(helm(cluster, "history", "chatroom", *ns, "-o", "json").stdout)
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "superseded"), (3, "deployed")]
