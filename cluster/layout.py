"""Where the one-node cluster lives: its folders, its addresses inside its own network
namespace, and the release of Kubernetes cluster/build.sh builds."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".cache" / "cluster"  # links to the binaries cluster/build.sh built
RUN_DIR = ROOT / ".run" / "cluster"

NODE_IP = "10.200.0.1"  # only inside the cluster's network namespace
NODE_CIDR = "10.200.0.1/24"
NODE_NAME = "chatroom-node"
POD_CIDR = "10.244.0.0/16"  # the node's pods: its first /24
NODE_POD_SUBNET = "10.244.0.0/24"
CLUSTER_DOMAIN = "cluster.local"
VOLUMES = 4  # PersistentVolumes (folders of the run directory) for claims without a class: Kafka's data
CGROUP_PREFIX = "chatroom-cluster-"
# What kubelet writes for the whole machine at start (vm.overcommit_memory=1, kernel.panic=10, ...):
# inside the cluster's mount namespace these are copies, so the machine's settings stay as they are.
KUBELET_SYSCTLS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
                   "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes")
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"  # the Service kube-dns (CoreDNS's pods), the pods' resolver
API_PORT = 6443
ETCD_CLIENT = "http://127.0.0.1:2379"
ETCD_PEER = "http://127.0.0.1:2380"
INGRESS_CLASS = "traefik"  # Traefik's own default name and controller (traefik.io/ingress-controller)
INGRESS_NAMESPACE = "traefik"  # where Traefik's pod runs
INGRESS_URL = f"http://{NODE_IP}"  # Traefik's entry point for the Ingresses (a hostPort), inside the namespace


def kubernetes_version() -> str:
    """The release cluster/kubernetes/go.mod builds, e.g. "v1.36.3"."""
    for line in (ROOT / "cluster" / "kubernetes" / "go.mod").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["k8s.io/kubernetes"]:
            return parts[1]
    raise RuntimeError("cluster/kubernetes/go.mod requires no k8s.io/kubernetes")


def build(*names: str) -> None:
    """Builds (or only links, when cached) the binaries; cluster/build.sh says what it does."""
    subprocess.run([str(ROOT / "cluster" / "build.sh"), *names], check=True)
