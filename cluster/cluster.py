"""A one-node Kubernetes on this machine, run inside a network and mount namespace of its own, so
that nothing of the cluster listens on the machine's network and everything it mounts goes away
with it: etcd, kube-apiserver, kube-controller-manager and kube-scheduler; and, unless started
without a node, containerd (Debian's, with runc and the CNI bridge and portmap plugins), kubelet,
kube-proxy (iptables), with the images of cluster/images/build.sh imported into containerd, and
as pods CoreDNS (the Service kube-dns in kube-system), Traefik (the ingress controller: the
IngressClass INGRESS_CLASS, at NODE_IP:80 by a hostPort), metrics-server (metrics.k8s.io) and
kube-router's firewall (a DaemonSet enforcing the NetworkPolicies with iptables and ipset).

    python -m cluster.cluster start           # what `make cluster` does (builds first: cluster/build.sh)
    python -m cluster.cluster start --no-node # the control plane alone
    python -m cluster.cluster stop            # what `make cluster-down` does
    python -m cluster.cluster exec -- CMD...  # CMD inside the cluster's network, KUBECONFIG set
                                              # (e.g. `exec -- kubectl get ns`, `exec -- helm list -A`)

The namespaces are held by one process (`sleep`, made by `unshare`); every program of the cluster
is started inside them with `nsenter`. Inside, the API server is at https://127.0.0.1:6443 and the
node's address is NODE_IP on a bridge of its own; pods get addresses of POD_CIDR on the bridge
cni0 and their own network namespaces, Services addresses of SERVICE_CIDR (kube-proxy's
iptables rules in the cluster's namespace), names from CoreDNS's pod (the Service kube-dns at
DNS_SERVICE_IP), and Ingresses of the class INGRESS_CLASS are served by Traefik's pod at
http://NODE_IP (a hostPort: the portmap plugin's DNAT; it sends to the pods' addresses). Both read
the API server through the `kubernetes` Service with ServiceAccounts of their own
(cluster/system_pods.py). In the cluster's
mount namespace /run, /var/log and /var/lib/cni are its own (tmpfs: containerd's state, the pods'
network namespaces and log links), and the kernel settings kubelet would change for the whole
machine (KUBELET_SYSCTLS) are files of the run directory bind-mounted over /proc/sys. The pods'
cgroups are under a cgroup of the run's own (CGROUP_PREFIX + the holder's pid). Stopping ends
every process in that network namespace, then those left in the run's cgroup (the containers),
then the holder: the namespaces, their addresses and mounts cease with it; the cgroup is removed.
The tests use the same code (`Cluster`) with their own run directory, and a cluster that dies
with the test process if that is killed. Standard library only.

The parts: cluster/layout.py (folders, addresses, the build), namespaces.py (the holder, running
and ending programs in it), cgroups.py, pki.py (certificates, kubeconfigs), control_plane.py,
node.py and node_files.py, system_pods.py, images.py; `Cluster` here starts and stops them in order.
"""


import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cluster.control_plane import ControlPlane, Stage
from cluster.images import helm_values, images
from cluster.layout import (
    BIN,
    INGRESS_CLASS,
    INGRESS_NAMESPACE,
    INGRESS_URL,
    NODE_IP,
    NODE_NAME,
    ROOT,
    RUN_DIR,
    build,
    kubernetes_version,
)
from cluster.namespaces import Namespaces
from cluster.node import Node

# What the tests take from here.
__all__ = ["BIN", "INGRESS_CLASS", "INGRESS_NAMESPACE", "INGRESS_URL", "NODE_IP", "ROOT", "Cluster", "build",
           "kubernetes_version"]


class Cluster:
    def __init__(self, run_dir: str | Path = RUN_DIR, bin_dir: str | Path = BIN, die_with_me: bool = False,
                 node: bool = True):
        """die_with_me: every process of the cluster is killed when this process ends.
        node: also run the node (containerd, kubelet, kube-proxy; CoreDNS and Traefik pods); without it, pods are
        made but never scheduled."""
        self.run_dir = Path(run_dir)
        self.bin = Path(bin_dir)
        self.node = node
        self.logs = self.run_dir / "logs"
        self.kubeconfig = self.run_dir / "kubeconfig"
        self.namespaces = Namespaces(self.run_dir, self.bin, self.kubeconfig, die_with_me)
        self.control_plane = ControlPlane(self.namespaces, self.bin, self.run_dir)
        self.the_node = Node(self.namespaces, self.bin, self.run_dir)

    def holder(self) -> int | None:
        """The pid holding the namespaces, if it is still the one this run made."""
        return self.namespaces.holder()

    def inside(self, *args: object) -> list[str]:
        """The command line running args inside the cluster's network and mount namespaces."""
        return self.namespaces.inside(*args)

    def env(self) -> dict[str, str]:
        return self.namespaces.env()

    def run(self, *args: object, check: bool = True, input: str | None = None,
            timeout: float = 300) -> "subprocess.CompletedProcess[str]":
        """Runs a command inside the cluster's network (kubectl, helm: KUBECONFIG is set)."""
        return self.namespaces.run(*args, check=check, input=input, timeout=timeout)

    def kubectl(self, *args: object, check: bool = True, input: str | None = None,
                timeout: float = 300) -> "subprocess.CompletedProcess[str]":
        return self.run(self.bin / "kubectl", *args, check=check, input=input, timeout=timeout)

    def images(self) -> dict[str, str]:
        """The images cluster/images/build.sh built: {name: reference}."""
        return images(self.bin)

    def helm_values(self) -> dict[str, list[str]]:
        """The --set arguments, per release, that point each chart at these images (and the
        chatroom chart's Ingress at the cluster's ingress controller)."""
        return helm_values(self.bin, INGRESS_CLASS, INGRESS_NAMESPACE)

    def ready(self) -> bool:
        return self.control_plane.ready() and (not self.node or self.the_node.ready())

    def start(self, timeout: float = 600) -> "Cluster":
        """Starts the cluster unless it is already running from this run directory: etcd and the
        API server, then (once the API server has made its default roles, which they need) the
        controller manager and the scheduler; with a node, containerd, the images imported into
        it, then kubelet and kube-proxy until the node is Ready, then CoreDNS's and Traefik's
        pods until they are Ready."""
        if self.ready():
            return self
        self.stop()
        self.logs.mkdir(parents=True, exist_ok=True)
        self.control_plane.write_files()
        deadline = time.monotonic() + timeout
        stages = self.control_plane.stages() + (self.the_node.stages() if self.node else [])
        try:
            state = self.namespaces.make(with_cgroup=self.node)
            if self.node:
                self.the_node.prepare(state["cgroup"])
            procs: dict[str, subprocess.Popen[bytes]] = {}
            for stage in stages:
                if stage.programs[0][0] == "kubelet":
                    self.the_node.import_images()
                self._run_stage(stage, procs, deadline, timeout)
            if self.node:
                self.the_node.serve_the_charts()
        except BaseException:
            self.stop()
            raise
        return self

    def _run_stage(self, stage: Stage, procs: "dict[str, subprocess.Popen[bytes]]", deadline: float,
                   timeout: float) -> None:
        """Starts a stage's programs, then waits until it is ready; fails if a program started
        so far exits, or at ``deadline``."""
        procs.update({name: self.namespaces.spawn(name, command()) for name, command in stage.programs})
        while not stage.ready():
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.log_tail(name)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster is not ready after {timeout}s:\n" +
                                   "\n".join(self.log_tail(name, 10) for name in procs))
            time.sleep(0.5)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self, timeout: float = 30) -> None:
        """Ends every process of the cluster and its namespaces (Namespaces.stop); with a node,
        removes the images unpacked and the containers' layers (a few GB; nothing is mounted on
        them now that the cluster's mount namespace is gone)."""
        state = self.namespaces.stop(timeout)
        if state is not None and state.get("cgroup"):
            shutil.rmtree(self.run_dir / "containerd", ignore_errors=True)

    def describe(self) -> str:
        """How to reach the running cluster, for `make cluster`."""
        run = f"{sys.executable} -m cluster.cluster exec --"
        lines = [f"Kubernetes {kubernetes_version()} is running in its own network namespace (held by pid "
                 f"{self.holder()}): etcd, kube-apiserver, kube-controller-manager, kube-scheduler"]
        if self.node:
            values = self.helm_values()
            lines += [f"and the node {NODE_NAME} (containerd, kubelet, kube-proxy; CoreDNS, Traefik, metrics-server "
                      "and kube-router pods, NetworkPolicies enforced; the",
                      "images of cluster/images/build.sh imported). Install the charts as docs/kubernetes.md tells, "
                      "with them:",
                      f"    {run} kubectl apply -f k8s/namespace.yaml"]
            for release in ("redis", "kafka", "chatroom"):
                lines.append(f"    {run} helm upgrade --install {release} helm/{release} -n chatroom --wait "
                             f"--timeout 15m {shlex.join(values[release])}")
            lines.append(f"    {run} helm test chatroom -n chatroom --logs")
            lines += [f"The page is then at {INGRESS_URL}/ inside the namespace (Traefik, the IngressClass "
                      f"{INGRESS_CLASS}), e.g.:",
                      f"    {run} curl -s {INGRESS_URL}/",
                      f"    {run} chromium --no-sandbox {INGRESS_URL}/   (with a display)"]
        else:
            lines.append("(no node).")
        lines += [f"Logs in {self.logs}. kubectl or helm inside it:",
                  f"    {run} kubectl get pods -A",
                  "or a shell there (KUBECONFIG set):",
                  f"    {run} bash",
                  "Stop it: make cluster-down"]
        return "\n".join(lines)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "start"
    cluster = Cluster(node="--no-node" not in argv[2:3])
    if command == "start":
        build()
        print("==> starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler; containerd "
              "(importing the images), kubelet, kube-proxy; kube-router, CoreDNS and Traefik pods", flush=True)
        cluster.start()
        print(cluster.describe())
    elif command == "stop":
        cluster.stop()
        shutil.rmtree(cluster.run_dir, ignore_errors=True)
        print("cluster stopped and removed")
    elif command == "exec":
        args = argv[2:]
        if args[:1] == ["--"]:
            args = args[1:]
        os.execvpe("nsenter", cluster.inside(*(args or ["bash"])), cluster.env())
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
