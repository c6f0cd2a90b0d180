"""The node, in the cluster's namespaces: containerd (the images imported into it), kubelet and
kube-proxy; its mounts, cgroup and files, when it is ready, and what it serves the charts
(PersistentVolumes; CoreDNS and Traefik as pods, cluster/system_pods.py)."""

import json
import subprocess
from pathlib import Path

from cluster.cgroups import make_cgroup
from cluster.control_plane import Stage
from cluster.images import image_archives, images
from cluster.layout import INGRESS_NAMESPACE, KUBELET_SYSCTLS, NODE_IP, NODE_NAME, VOLUMES
from cluster.namespaces import Namespaces
from cluster.node_files import write_node_files
from cluster.system_pods import system_pods

CONTAINERD_SOCKET = "/run/containerd/containerd.sock"


class Node:
    def __init__(self, namespaces: Namespaces, bin_dir: Path, run_dir: Path):
        self.namespaces = namespaces
        self.bin = bin_dir
        self.run_dir = run_dir

    def prepare(self, cgroup: str) -> None:
        """The node's mounts, its cgroup (``cgroup``) and configuration files."""
        self._mounts()
        make_cgroup(cgroup)
        write_node_files(self.run_dir, self.run_dir / "pki", images(self.bin)["pause"], cgroup)

    def _mounts(self) -> None:
        """In the cluster's mount namespace: tmpfs on /run (containerd's state and socket, runc's,
        the pods' network namespaces), /var/log (kubelet's links to the containers' logs) and
        /var/lib/cni (the CNI plugins' cache); copies of the kernel settings kubelet changes."""
        sysctls = self.run_dir / "sysctl"
        sysctls.mkdir(parents=True, exist_ok=True)
        script = ["set -e", "mount -t tmpfs -o mode=0755 cluster-run /run",
                  "mount -t tmpfs -o mode=0755 cluster-log /var/log",
                  "mount -t tmpfs -o mode=0755 cluster-cni /var/lib/cni"]
        for name in KUBELET_SYSCTLS:
            copy = sysctls / name.replace("/", ".")
            copy.write_text(Path("/proc/sys", name).read_text())
            script.append(f"mount --bind {copy} /proc/sys/{name}")
        Path("/var/lib/cni").mkdir(parents=True, exist_ok=True)  # the mount point (CNI's own path)
        subprocess.run(self.namespaces.inside("sh", "-c", "\n".join(script)), check=True)

    def stages(self) -> list[Stage]:
        """containerd; then, once the images are imported into it, kubelet and kube-proxy,
        until the node is Ready."""
        return [Stage((("containerd", self.containerd_command),), self.containerd_ready),
                Stage((("kubelet", self.kubelet_command), ("kube-proxy", self.kube_proxy_command)), self.ready)]

    def containerd_command(self) -> list[object]:
        return ["containerd", f"--config={self.run_dir / 'containerd.toml'}", "--log-level=warn"]

    def kubelet_command(self) -> list[object]:
        return [self.bin / "kubelet", f"--config={self.run_dir / 'kubelet.yaml'}",
                f"--kubeconfig={self.run_dir / 'kubelet.kubeconfig'}",
                f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
                f"--root-dir={self.run_dir / 'kubelet'}", f"--cert-dir={self.run_dir / 'kubelet-pki'}"]

    def kube_proxy_command(self) -> list[object]:
        return [self.bin / "kube-proxy", f"--config={self.run_dir / 'kube-proxy.yaml'}"]

    def ctr(self, *args: object, timeout: float = 300) -> "subprocess.CompletedProcess[str]":
        return self.namespaces.run("ctr", f"--address={CONTAINERD_SOCKET}", "--namespace=k8s.io", *args,
                                   timeout=timeout)

    def containerd_ready(self) -> bool:
        return self.namespaces.run("ctr", f"--address={CONTAINERD_SOCKET}", "version",
                                   check=False, timeout=30).returncode == 0

    def import_images(self) -> None:
        """Each image of cluster/images/build.sh into containerd (the registry is never asked)."""
        for archive in image_archives(self.bin):
            self.ctr("images", "import", archive, timeout=600)

    def _kubectl(self, *args: object, check: bool = True,
                 input: str | None = None) -> "subprocess.CompletedProcess[str]":
        return self.namespaces.run(self.bin / "kubectl", *args, check=check, input=input)

    def ready(self) -> bool:
        """The node is Ready."""
        ready = self._kubectl("get", "node", NODE_NAME, "-o",
                              'jsonpath={.status.conditions[?(@.type=="Ready")].status}', check=False)
        return ready.stdout.strip() == "True"

    def serve_the_charts(self, timeout: float = 300) -> None:
        """What the charts need of the cluster once the node is ready: volumes for their claims,
        kube-router enforcing the NetworkPolicies, CoreDNS and Traefik running as pods (until each
        one's pod is Ready), and metrics-server (Ready once it has scraped the kubelet; not
        waited for)."""
        self._volumes()
        self._kubectl("apply", "--server-side", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": system_pods(images(self.bin))}))
        # kube-router first: the policies are enforced before any of the charts' pods exists.
        for namespace, kind, name in (("kube-system", "daemonset", "kube-router"),
                                      ("kube-system", "deployment", "coredns"),
                                      (INGRESS_NAMESPACE, "deployment", "traefik")):
            self.namespaces.run(self.bin / "kubectl", "rollout", "status", kind, name, "-n", namespace,
                                f"--timeout={round(timeout)}s", timeout=timeout + 30)

    def _volumes(self) -> None:
        """VOLUMES hostPath PersistentVolumes without a storage class, each a folder of the run
        directory open to the pods' users: what claims without a class (the kafka chart's data)
        bind to, there being no provisioner."""
        items = []
        for i in range(VOLUMES):
            path = self.run_dir / "volumes" / f"volume-{i}"
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
            items.append({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"volume-{i}"},
                          "spec": {"capacity": {"storage": "8Gi"}, "accessModes": ["ReadWriteOnce"],
                                   "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                                   "hostPath": {"path": str(path), "type": "Directory"}}})
        self._kubectl("apply", "--server-side", "-f", "-",
                      input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
