"""The node's configuration files: containerd's, the CNI bridge's, kubelet's and kube-proxy's."""

import json
import shutil
from pathlib import Path

from cluster.layout import CLUSTER_DOMAIN, DNS_SERVICE_IP, NODE_IP, NODE_NAME, NODE_POD_SUBNET, POD_CIDR
from cluster.pki import write_kubeconfig


def write_node_files(run: Path, pki: Path, pause_image: str, cgroup: str) -> None:
    """containerd's, CNI's, kubelet's and kube-proxy's configuration, in the run directory
    ``run``; ``pki``: the certificates, ``pause_image``: the pods' sandbox, ``cgroup``: the run's
    (kubelet's cgroupRoot)."""
    for folder in ("cni", "pod-logs"):
        (run / folder).mkdir(exist_ok=True)
    (run / "containerd.toml").write_text(f"""\
version = 2
root = "{run / 'containerd'}"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{run / 'containerd-opt'}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  disable_apparmor = true
  # No lowering of the containers' OOM scores below containerd's own (root here may lack
  # CAP_SYS_RESOURCE: the pause container's -998 would be refused).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{shutil.which('runc', path='/usr/sbin:/usr/bin:/sbin:/bin') or 'runc'}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{run / 'cni'}"
""")
    (run / "cni" / "10-chatroom.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": "chatroom",
        "plugins": [{"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
                     "hairpinMode": True,
                     "ipam": {"type": "host-local", "dataDir": str(run / "cni-ipam"),
                              "ranges": [[{"subnet": NODE_POD_SUBNET}]],
                              "routes": [{"dst": "0.0.0.0/0"}]}},
                    # hostPorts (Traefik's entry point on the node's address), by iptables DNAT.
                    {"type": "portmap", "capabilities": {"portMappings": True}}]}, indent=2) + "\n")
    write_kubeconfig(run / "kubelet.kubeconfig", pki, "kubelet")
    write_kubeconfig(run / "kube-proxy.kubeconfig", pki, "kube-proxy")
    (run / "kubelet.yaml").write_text(json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "cgroupDriver": "cgroupfs", "failCgroupV1": False,  # this machine's cgroup v1
        "cgroupRoot": f"/{cgroup}",
        "address": NODE_IP, "readOnlyPort": 0, "healthzBindAddress": "127.0.0.1",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        "clusterDomain": CLUSTER_DOMAIN, "clusterDNS": [DNS_SERVICE_IP],
        "resolvConf": "",  # the pods know the cluster's names only
        # The images cannot be pulled again: never collect them.
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        # A disk and memory shared with other work: evict only when nearly out.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        "podLogsDir": str(run / "pod-logs"),
        "serializeImagePulls": False,
    }, indent=2) + "\n")
    (run / "kube-proxy.yaml").write_text(json.dumps({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(run / "kube-proxy.kubeconfig")},
        "mode": "iptables", "clusterCIDR": POD_CIDR, "hostnameOverride": NODE_NAME,
        "healthzBindAddress": "127.0.0.1:10256", "metricsBindAddress": "127.0.0.1:10249",
        # Leave the machine's conntrack table size and timeouts alone.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s"},
    }, indent=2) + "\n")
