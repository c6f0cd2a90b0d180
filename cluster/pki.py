"""The cluster's certificates (openssl) and the kubeconfigs that present them."""

import json
import subprocess
from pathlib import Path

from cluster.layout import API_PORT, KUBERNETES_SERVICE_IP, NODE_IP, NODE_NAME

FRONT_PROXY_CLIENT = "front-proxy-client"  # the name aggregated API servers accept as the front proxy


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(pki: Path) -> None:
    """A CA; the API server's serving certificate; client certificates for the admin (group
    system:masters), the controller manager, the scheduler, kube-proxy and the node's kubelet
    (the users Kubernetes' default RBAC roles and the Node authorizer name), and the API
    server's own to the kubelet, and the one it presents to aggregated API servers
    (metrics-server) as their front proxy; the service-account signing key. EC keys: quick to
    make. Those already in ``pki`` are kept."""
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "service-account.pub").exists() and (pki / "front-proxy-client.crt").exists():
        return

    def key(name: str) -> None:
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=pki)

    key("ca")
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=chatroom-cluster-ca",
             "-days", "3650", "-out", "ca.crt", cwd=pki)
    sans = ",".join([f"IP:{ip}" for ip in ("127.0.0.1", NODE_IP, KUBERNETES_SERVICE_IP)] +
                    [f"DNS:{n}" for n in ("localhost", "kubernetes", "kubernetes.default",
                                          "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")])
    for name, subject, ext in (
            ("apiserver", "/CN=kube-apiserver", f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n"),
            ("admin", "/O=system:masters/CN=admin", "extendedKeyUsage=clientAuth\n"),
            ("controller-manager", "/CN=system:kube-controller-manager", "extendedKeyUsage=clientAuth\n"),
            ("scheduler", "/CN=system:kube-scheduler", "extendedKeyUsage=clientAuth\n"),
            ("kube-proxy", "/CN=system:kube-proxy", "extendedKeyUsage=clientAuth\n"),
            ("kubelet", f"/O=system:nodes/CN=system:node:{NODE_NAME}", "extendedKeyUsage=clientAuth\n"),
            ("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client",
             "extendedKeyUsage=clientAuth\n"),
            ("front-proxy-client", f"/CN={FRONT_PROXY_CLIENT}", "extendedKeyUsage=clientAuth\n")):
        key(name)
        (pki / f"{name}.ext").write_text(ext)
        _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "3650", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=pki)
    key("service-account")
    _openssl("ec", "-in", "service-account.key", "-pubout", "-out", "service-account.pub", cwd=pki)


def write_kubeconfig(path: Path, pki: Path, user: str) -> None:
    """A kubeconfig for the API server inside the namespace, as the client certificate `user`."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "chatroom",
        "clusters": [{"name": "chatroom", "cluster": {
            "server": f"https://127.0.0.1:{API_PORT}", "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": user, "user": {
            "client-certificate": str(pki / f"{user}.crt"), "client-key": str(pki / f"{user}.key")}}],
        "contexts": [{"name": "chatroom", "context": {"cluster": "chatroom", "user": user}}],
    }, indent=2) + "\n")
    path.chmod(0o600)
