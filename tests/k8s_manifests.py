"""Rendering the charts and reading what they render, for the tests in this folder.

Nothing here needs a cluster: `helm template` renders the manifests, and the tools the
checks use (helm, kubeconform, kube-score) come from scripts/install-k8s-tools.sh.
"""

import functools
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HELM_DIR = ROOT / "helm"
GO_BIN = ROOT / ".cache" / "go" / "bin"
NAMESPACE = "chatroom"
CHARTS = ("chatroom", "kafka", "redis")
# The releases as skaffold.yaml and docs/kubernetes.md install them.
RELEASES = {"chatroom": "chatroom", "kafka": "kafka", "redis": "redis"}
# Kubernetes versions the charts are rendered and validated for (the oldest and newest we support).
KUBE_VERSIONS = ("1.30.0", "1.35.0")
# Custom resources: no schema in the bundled Kubernetes schemas; checked structurally instead.
CUSTOM_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "HTTPRoute"}

# The values scenarios every check runs over: chart -> extra `helm template` arguments.
SCENARIOS = {
    "defaults": {},
    "dev": {"chatroom": ["-f", "helm/chatroom/values-dev.yaml"]},
    "ha": {"kafka": ["-f", "helm/kafka/values-ha.yaml"], "redis": ["-f", "helm/redis/values-persistent.yaml"]},
    "policies-off": {chart: ["--set", "networkPolicy.enabled=false"] for chart in CHARTS},
    "monitoring": {
        "chatroom": ["--set", "monitoring.serviceMonitor.enabled=true,monitoring.podMonitor.enabled=true,"
                     "monitoring.prometheusRule.enabled=true,monitoring.dashboards.enabled=true,"
                     "monitoring.release=kps"],
        "redis": ["--set", "metrics.enabled=true,metrics.serviceMonitor.enabled=true,"
                           "metrics.serviceMonitor.release=kps"],
        "kafka": ["--set", "metrics.enabled=true,metrics.podMonitor.enabled=true,metrics.podMonitor.release=kps"],
    },
    "gateway": {"chatroom": ["--set", "gateway.enabled=true,ingress.enabled=false"]},
    "redis-cluster": {"redis": ["-f", "helm/redis/values-cluster.yaml"]},
}


def tool(name):
    """The path of a tool installed by scripts/install-k8s-tools.sh (or on PATH)."""
    path = GO_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is not installed: run scripts/install.sh test")
    return found


def run(*args, cwd=ROOT, check=True):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def helm_template(chart_dir, release, args=(), kube_version=KUBE_VERSIONS[-1]):
    """The YAML text `helm template` renders for one chart."""
    return run(tool("helm"), "template", release, str(chart_dir), "--namespace", NAMESPACE,
               "--kube-version", kube_version, *args).stdout


def parse(text):
    return [doc for doc in yaml.safe_load_all(text) if doc]


@functools.cache
def render_text(scenario, kube_version=KUBE_VERSIONS[-1]):
    """All three charts of a scenario as one multi-document YAML text (one namespace)."""
    parts = []
    for chart in CHARTS:
        args = SCENARIOS[scenario].get(chart, [])
        parts.append(helm_template(HELM_DIR / chart, RELEASES[chart], args, kube_version))
    return "\n---\n".join(parts)


def render(scenario, kube_version=KUBE_VERSIONS[-1]):
    return parse(render_text(scenario, kube_version))


def is_hook(doc):
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})


def is_test_hook(doc):
    return "test" in (doc["metadata"].get("annotations") or {}).get("helm.sh/hook", "").split(",")


def of_kind(docs, *kinds):
    return [d for d in docs if d["kind"] in kinds]


def named(docs, kind, name):
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_spec(doc):
    """The pod spec of a workload (Deployment, StatefulSet, Job) or of a Pod."""
    if doc["kind"] == "Pod":
        return doc["spec"]
    return doc["spec"]["template"]["spec"]


def pod_labels(doc):
    if doc["kind"] == "Pod":
        return doc["metadata"].get("labels") or {}
    return doc["spec"]["template"]["metadata"].get("labels") or {}


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "Pod", "DaemonSet")


def workloads(docs):
    return of_kind(docs, *WORKLOAD_KINDS)


def containers(doc, init=True):
    spec = pod_spec(doc)
    return list(spec.get("containers", [])) + (list(spec.get("initContainers", [])) if init else [])
