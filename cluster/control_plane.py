"""The control plane: etcd, kube-apiserver, kube-controller-manager and kube-scheduler, their
certificates and kubeconfigs, and when each answers."""

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from cluster.layout import API_PORT, ETCD_CLIENT, ETCD_PEER, NODE_IP, SERVICE_CIDR
from cluster.namespaces import Namespaces
from cluster.pki import FRONT_PROXY_CLIENT, make_certificates, write_kubeconfig


class Stage(NamedTuple):
    """Programs started together (name, command line), then waited for until ``ready``."""
    programs: tuple[tuple[str, Callable[[], list[object]]], ...]
    ready: Callable[[], bool]


class ControlPlane:
    def __init__(self, namespaces: Namespaces, bin_dir: Path, run_dir: Path):
        self.namespaces = namespaces
        self.bin = bin_dir
        self.run_dir = run_dir
        self.pki = run_dir / "pki"

    def write_files(self) -> None:
        """The certificates, and the kubeconfigs of the admin (kubectl, helm: KUBECONFIG),
        the controller manager and the scheduler."""
        make_certificates(self.pki)
        write_kubeconfig(self.namespaces.kubeconfig, self.pki, "admin")
        for user in ("controller-manager", "scheduler"):
            write_kubeconfig(self.run_dir / f"{user}.kubeconfig", self.pki, user)

    def stages(self) -> list[Stage]:
        """etcd and the API server, then (once the API server has made its default roles, which
        they need) the controller manager and the scheduler."""
        return [Stage((("etcd", self.etcd_command), ("kube-apiserver", self.apiserver_command)), self.api_ready),
                Stage((("kube-controller-manager", self.controller_manager_command),
                       ("kube-scheduler", self.scheduler_command)), self.ready)]

    def etcd_command(self) -> list[object]:
        return [self.bin / "etcd", "--name=cluster", f"--data-dir={self.run_dir / 'etcd'}",
                f"--listen-client-urls={ETCD_CLIENT}", f"--advertise-client-urls={ETCD_CLIENT}",
                f"--listen-peer-urls={ETCD_PEER}", f"--initial-advertise-peer-urls={ETCD_PEER}",
                f"--initial-cluster=cluster={ETCD_PEER}",
                "--unsafe-no-fsync",  # a throwaway store: no fsync wait on a disk shared with others
                "--log-level=warn"]

    def apiserver_command(self) -> list[object]:
        pki = self.pki
        return [self.bin / "kube-apiserver",
                f"--etcd-servers={ETCD_CLIENT}",
                "--bind-address=0.0.0.0",  # the cluster's own network namespace: lo and the node address
                f"--advertise-address={NODE_IP}", f"--secure-port={API_PORT}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--cert-dir={self.run_dir / 'apiserver'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                # To the kubelet (logs, exec): a certificate of the CA it trusts (kubelet.yaml, x509).
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                "--kubelet-preferred-address-types=InternalIP",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'service-account.pub'}",
                f"--service-account-signing-key-file={pki / 'service-account.key'}",
                # The aggregation layer (metrics-server's metrics.k8s.io): the API server proxies
                # to it as FRONT_PROXY_CLIENT, naming the user in headers it trusts; straight to
                # the pod's address (no Service hop from the API server's own network).
                f"--requestheader-client-ca-file={pki / 'ca.crt'}",
                f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
                "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                "--enable-aggregator-routing=true",
                "--authorization-mode=Node,RBAC",
                # PodSecurity is on by default; named so that no change of defaults drops it.
                "--enable-admission-plugins=NodeRestriction,PodSecurity",
                "--profiling=false"]

    def controller_manager_command(self) -> list[object]:
        pki, config = self.pki, self.run_dir / "controller-manager.kubeconfig"
        return [self.bin / "kube-controller-manager",
                f"--kubeconfig={config}", f"--authentication-kubeconfig={config}",
                f"--authorization-kubeconfig={config}",
                "--bind-address=127.0.0.1", f"--cert-dir={self.run_dir / 'controller-manager'}",
                "--leader-elect=false", "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'service-account.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--profiling=false"]

    def scheduler_command(self) -> list[object]:
        config = self.run_dir / "scheduler.kubeconfig"
        return [self.bin / "kube-scheduler",
                f"--kubeconfig={config}", f"--authentication-kubeconfig={config}",
                f"--authorization-kubeconfig={config}",
                "--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false"]

    def _answers(self, *kubectl_args: str) -> bool:
        result = self.namespaces.run(self.bin / "kubectl", *kubectl_args, check=False, timeout=30)
        return result.returncode == 0

    def api_ready(self) -> bool:
        return self.namespaces.holder() is not None and self._answers("get", "--raw", "/readyz")

    def ready(self) -> bool:
        """The API server answers and the controller manager is at work: it has made the
        namespace `default`'s ServiceAccount."""
        return self.api_ready() and self._answers("get", "serviceaccount", "default", "-n", "default")
