"""A one-node Kubernetes on this machine, run inside a network and mount namespace of its own, so
that nothing of the cluster listens on the machine's network and everything it mounts goes away
with it: etcd, kube-apiserver, kube-controller-manager and kube-scheduler; and, unless started
without a node, containerd (Debian's, with runc and the CNI bridge plugin), kubelet, kube-proxy
(iptables), CoreDNS and Traefik (the ingress controller: the IngressClass INGRESS_CLASS at
NODE_IP:80), with the images of cluster/images/build.sh imported into containerd.

    python cluster/cluster.py start           # what `make cluster` does (builds first: cluster/build.sh)
    python cluster/cluster.py start --no-node # the control plane alone
    python cluster/cluster.py stop            # what `make cluster-down` does
    python cluster/cluster.py exec -- CMD...  # CMD inside the cluster's network, KUBECONFIG set
                                              # (e.g. `exec -- kubectl get ns`, `exec -- helm list -A`)

The namespaces are held by one process (`sleep`, made by `unshare`); every program of the cluster
is started inside them with `nsenter`. Inside, the API server is at https://127.0.0.1:6443 and the
node's address is NODE_IP on a bridge of its own; pods get addresses of POD_CIDR on the bridge
cni0 and their own network namespaces, Services addresses of SERVICE_CIDR (kube-proxy's
iptables rules in the cluster's namespace), names from CoreDNS at NODE_IP:53, and Ingresses of the
class INGRESS_CLASS are served by Traefik at http://NODE_IP (it sends to the pods' addresses, which
the node reaches through cni0). CoreDNS and Traefik are processes of the node, as kubelet is,
reading the API server with the admin kubeconfig. In the cluster's
mount namespace /run, /var/log and /var/lib/cni are its own (tmpfs: containerd's state, the pods'
network namespaces and log links), and the kernel settings kubelet would change for the whole
machine (KUBELET_SYSCTLS) are files of the run directory bind-mounted over /proc/sys. The pods'
cgroups are under a cgroup of the run's own (CGROUP_PREFIX + the holder's pid). Stopping ends
every process in that network namespace, then those left in the run's cgroup (the containers),
then the holder: the namespaces, their addresses and mounts cease with it; the cgroup is removed.
The tests use the same code (`Cluster`) with their own run directory, and a cluster that dies
with the test process if that is killed. Standard library only.
"""

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
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
CGROUP_FS = Path("/sys/fs/cgroup")
# What kubelet writes for the whole machine at start (vm.overcommit_memory=1, kernel.panic=10, ...):
# inside the cluster's mount namespace these are copies, so the machine's settings stay as they are.
KUBELET_SYSCTLS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
                   "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes")
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
API_PORT = 6443
ETCD_CLIENT = "http://127.0.0.1:2379"
ETCD_PEER = "http://127.0.0.1:2380"
INGRESS_CLASS = "traefik"  # Traefik's own default name and controller (traefik.io/ingress-controller)
INGRESS_URL = f"http://{NODE_IP}"  # Traefik's entry point for the Ingresses, inside the namespace
TRAEFIK_PING = "http://127.0.0.1:8082/ping"  # its health (an entry point of its own, loopback only)


def kubernetes_version():
    """The release cluster/kubernetes/go.mod builds, e.g. "v1.36.3"."""
    for line in (ROOT / "cluster" / "kubernetes" / "go.mod").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["k8s.io/kubernetes"]:
            return parts[1]
    raise RuntimeError("cluster/kubernetes/go.mod requires no k8s.io/kubernetes")


def build(*names):
    """Builds (or only links, when cached) the binaries; cluster/build.sh says what it does."""
    subprocess.run([str(ROOT / "cluster" / "build.sh"), *names], check=True)


def _netns(pid):
    """The identity (inode) of a process's network namespace, or None when it is gone."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def _die_with_parent():
    """In a child before exec: be killed when the process that started it ends (prctl
    PR_SET_PDEATHSIG), so that a test run killed without its teardown leaves nothing behind."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class Cluster:
    def __init__(self, run_dir=RUN_DIR, bin_dir=BIN, die_with_me=False, node=True):
        """die_with_me: every process of the cluster is killed when this process ends.
        node: also run the node (containerd, kubelet, kube-proxy, CoreDNS, Traefik); without it, pods are
        made but never scheduled."""
        self.run_dir = Path(run_dir)
        self.bin = Path(bin_dir)
        self.node = node
        self._preexec = _die_with_parent if die_with_me else None
        self.pki = self.run_dir / "pki"
        self.logs = self.run_dir / "logs"
        self.kubeconfig = self.run_dir / "kubeconfig"
        self.state_file = self.run_dir / "cluster.json"
        self._children = []  # the Popen objects of this process's starts, reaped by stop()

    # --- the namespaces -------------------------------------------------------------------
    def _state(self):
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _save(self, state):
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def holder(self):
        """The pid holding the namespaces, if it is still the one this run made."""
        state = self._state()
        if state and _netns(state["holder"]) == state["netns"] and state["netns"] != _netns(os.getpid()):
            return state["holder"]
        return None

    def inside(self, *args):
        """The command line running args inside the cluster's network and mount namespaces."""
        pid = self.holder()
        if pid is None:
            raise RuntimeError(f"no cluster is running from {self.run_dir}")
        return ["nsenter", f"--target={pid}", "--net", "--mount", "--", *map(str, args)]

    def env(self):
        path = os.pathsep.join([str(self.bin), str(ROOT / ".cache" / "go" / "bin"), os.environ.get("PATH", ""),
                                "/usr/local/sbin", "/usr/sbin", "/sbin"])  # iptables, mount: kubelet, kube-proxy
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}

    def run(self, *args, check=True, input=None, timeout=300):
        """Runs a command inside the cluster's network (kubectl, helm: KUBECONFIG is set)."""
        result = subprocess.run(self.inside(*args), env=self.env(), input=input, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}")
        return result

    def kubectl(self, *args, **kwargs):
        return self.run(self.bin / "kubectl", *args, **kwargs)

    def _make_namespaces(self):
        """Starts the holder: a process in a new network and mount namespace (mounts private)."""
        holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "sleep", "infinity"],
            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, preexec_fn=self._preexec)
        ours = _netns(os.getpid())
        deadline = time.monotonic() + 10
        while _netns(holder.pid) in (None, ours):
            if holder.poll() is not None or time.monotonic() > deadline:
                holder.kill()
                raise RuntimeError("unshare could not make a network namespace (root is needed)")
            time.sleep(0.05)
        state = {"holder": holder.pid, "netns": _netns(holder.pid), "processes": {}}
        if self.node:
            state["cgroup"] = f"{CGROUP_PREFIX}{holder.pid}"
        self._save(state)
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "add", "cluster0", "type", "bridge"],
                    ["ip", "addr", "add", NODE_CIDR, "dev", "cluster0"],
                    ["ip", "link", "set", "cluster0", "up"]):
            subprocess.run(self.inside(*cmd), check=True)
        if self.node:
            self._node_mounts()
            _make_cgroup(state["cgroup"])

    def _spawn(self, name, args):
        """Starts a program of the cluster inside the namespaces, logging to logs/<name>.log."""
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(self.inside(*args), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=self.env(),
                                preexec_fn=self._preexec)
        log.close()
        self._children.append(proc)
        state = self._state()
        state["processes"][name] = proc.pid
        self._save(state)
        return proc

    # --- certificates and configuration ----------------------------------------------------
    def _certificates(self):
        """A CA; the API server's serving certificate; client certificates for the admin (group
        system:masters), the controller manager, the scheduler, kube-proxy and the node's kubelet
        (the users Kubernetes' default RBAC roles and the Node authorizer name), and the API
        server's own to the kubelet; the service-account signing key. EC keys: quick to make."""
        pki = self.pki
        pki.mkdir(parents=True, exist_ok=True)
        if (pki / "service-account.pub").exists() and (pki / "apiserver-kubelet-client.crt").exists():
            return
        def key(name):
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
                 "extendedKeyUsage=clientAuth\n")):
            key(name)
            (pki / f"{name}.ext").write_text(ext)
            _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki)
            _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                     "-CAcreateserial", "-days", "3650", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=pki)
        key("service-account")
        _openssl("ec", "-in", "service-account.key", "-pubout", "-out", "service-account.pub", cwd=pki)

    def _write_kubeconfig(self, path, user):
        """A kubeconfig for the API server inside the namespace, as the client certificate `user`."""
        pki = self.pki
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "chatroom",
            "clusters": [{"name": "chatroom", "cluster": {
                "server": f"https://127.0.0.1:{API_PORT}", "certificate-authority": str(pki / "ca.crt")}}],
            "users": [{"name": user, "user": {
                "client-certificate": str(pki / f"{user}.crt"), "client-key": str(pki / f"{user}.key")}}],
            "contexts": [{"name": "chatroom", "context": {"cluster": "chatroom", "user": user}}],
        }, indent=2) + "\n")
        path.chmod(0o600)

    def etcd_command(self):
        return [self.bin / "etcd", "--name=cluster", f"--data-dir={self.run_dir / 'etcd'}",
                f"--listen-client-urls={ETCD_CLIENT}", f"--advertise-client-urls={ETCD_CLIENT}",
                f"--listen-peer-urls={ETCD_PEER}", f"--initial-advertise-peer-urls={ETCD_PEER}",
                f"--initial-cluster=cluster={ETCD_PEER}",
                "--unsafe-no-fsync",  # a throwaway store: no fsync wait on a disk shared with others
                "--log-level=warn"]

    def apiserver_command(self):
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
                "--authorization-mode=Node,RBAC",
                # PodSecurity is on by default; named so that no change of defaults drops it.
                "--enable-admission-plugins=NodeRestriction,PodSecurity",
                "--profiling=false"]

    def controller_manager_command(self):
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

    def scheduler_command(self):
        config = self.run_dir / "scheduler.kubeconfig"
        return [self.bin / "kube-scheduler",
                f"--kubeconfig={config}", f"--authentication-kubeconfig={config}",
                f"--authorization-kubeconfig={config}",
                "--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false"]

    # --- the node ---------------------------------------------------------------------------
    def images(self):
        """The images cluster/images/build.sh built: {name: reference}, e.g. "kafka":
        "localhost/chatroom-cluster/kafka:4.1.1-<hash>"."""
        return {path.name: (path / "ref").read_text().strip()
                for path in sorted((self.bin / "images").iterdir()) if (path / "ref").exists()}

    def helm_values(self):
        """The --set arguments, per release, that point each chart at these images (and the
        chatroom chart's Ingress at the cluster's ingress controller)."""
        images = self.images()
        def repository_and_tag(name):
            repository, _, tag = images[name].rpartition(":")
            return [f"image.repository={repository}", f"image.tag={tag}"]
        registry, _, tag = images["chatroom-ingest"].rpartition(":")
        return {"redis": ["--set-string", ",".join(repository_and_tag("redis"))],
                "kafka": ["--set-string", ",".join(repository_and_tag("kafka"))],
                "chatroom": ["--set-string", f"image.registry={registry.rpartition('/')[0]},image.tag={tag},"
                                             f"ingress.className={INGRESS_CLASS}"]}

    def _node_mounts(self):
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
        subprocess.run(self.inside("sh", "-c", "\n".join(script)), check=True)

    def _node_files(self):
        """containerd's, CNI's, kubelet's, kube-proxy's, CoreDNS's and Traefik's configuration."""
        run, pki = self.run_dir, self.pki
        images = self.images()
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
  sandbox_image = "{images['pause']}"
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
                                  "routes": [{"dst": "0.0.0.0/0"}]}}]}, indent=2) + "\n")
        self._write_kubeconfig(run / "kubelet.kubeconfig", "kubelet")
        self._write_kubeconfig(run / "kube-proxy.kubeconfig", "kube-proxy")
        (run / "kubelet.yaml").write_text(json.dumps({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
            "cgroupDriver": "cgroupfs", "failCgroupV1": False,  # this machine's cgroup v1
            "cgroupRoot": f"/{self._state()['cgroup']}",
            "address": NODE_IP, "readOnlyPort": 0, "healthzBindAddress": "127.0.0.1",
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(pki / "ca.crt")}},
            "authorization": {"mode": "Webhook"},
            "clusterDomain": CLUSTER_DOMAIN, "clusterDNS": [NODE_IP],
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
        (run / "Corefile").write_text(f"""\
.:53 {{
    errors
    health 127.0.0.1:8080
    ready 127.0.0.1:8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {self.kubeconfig} chatroom
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
    loadbalance
}}
""")
        # Traefik: the Ingresses of the class INGRESS_CLASS (KUBECONFIG is the admin's, env()).
        # No timeout on reading a request or on the answer: an SSE response lasts as long as
        # its reader (text/event-stream is passed on as written, unbuffered).
        (run / "traefik.yaml").write_text(json.dumps({
            "entryPoints": {
                "web": {"address": f"{NODE_IP}:80",
                        "transport": {"respondingTimeouts": {"readTimeout": "0s", "writeTimeout": "0s",
                                                             "idleTimeout": "180s"}}},
                "ping": {"address": TRAEFIK_PING.split("/")[2]}},
            "ping": {"entryPoint": "ping"},
            # ingressEndpoint: the address it writes in the status of the Ingresses it serves.
            "providers": {"kubernetesIngress": {"ingressClass": INGRESS_CLASS,
                                                "ingressEndpoint": {"ip": NODE_IP}}},
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            "log": {"level": "WARN"},
        }, indent=2) + "\n")

    def _volumes(self):
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
        self.kubectl("apply", "--server-side", "-f", "-",
                     input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

    def containerd_command(self):
        return ["containerd", f"--config={self.run_dir / 'containerd.toml'}", "--log-level=warn"]

    def kubelet_command(self):
        return [self.bin / "kubelet", f"--config={self.run_dir / 'kubelet.yaml'}",
                f"--kubeconfig={self.run_dir / 'kubelet.kubeconfig'}",
                f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
                f"--root-dir={self.run_dir / 'kubelet'}", f"--cert-dir={self.run_dir / 'kubelet-pki'}"]

    def kube_proxy_command(self):
        return [self.bin / "kube-proxy", f"--config={self.run_dir / 'kube-proxy.yaml'}"]

    def coredns_command(self):
        return [self.bin / "coredns", f"-conf={self.run_dir / 'Corefile'}"]

    def traefik_command(self):
        return [self.bin / "traefik", f"--configFile={self.run_dir / 'traefik.yaml'}"]

    def ctr(self, *args, **kwargs):
        return self.run("ctr", "--address=/run/containerd/containerd.sock", "--namespace=k8s.io", *args, **kwargs)

    def containerd_ready(self):
        return self.run("ctr", "--address=/run/containerd/containerd.sock", "version",
                        check=False, timeout=30).returncode == 0

    def import_images(self):
        """Each image of cluster/images/build.sh into containerd (the registry is never asked)."""
        for name in self.images():
            self.ctr("images", "import", self.bin / "images" / name / "image.tar", timeout=600)

    def node_ready(self):
        """The node is Ready, CoreDNS answers (its `ready` plugin: synced with the API server)
        and so does Traefik."""
        ready = self.kubectl("get", "node", NODE_NAME, "-o",
                             'jsonpath={.status.conditions[?(@.type=="Ready")].status}', check=False)
        if ready.stdout.strip() != "True":
            return False
        probe = ("import urllib.request\n"
                 f"for url in ('http://127.0.0.1:8181/ready', '{TRAEFIK_PING}'):\n"
                 "    urllib.request.urlopen(url, timeout=5)")
        return self.run(sys.executable, "-c", probe, check=False, timeout=30).returncode == 0

    def _ingress_class(self):
        """The IngressClass INGRESS_CLASS, Traefik's (its provider serves the Ingresses naming it)."""
        self.kubectl("apply", "--server-side", "-f", "-", input=json.dumps({
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": INGRESS_CLASS},
            "spec": {"controller": "traefik.io/ingress-controller"}}))

    # --- start and stop --------------------------------------------------------------------
    def _answers(self, *kubectl_args):
        result = subprocess.run(self.inside(self.bin / "kubectl", *kubectl_args), env=self.env(),
                                capture_output=True, text=True, timeout=30)
        return result.returncode == 0

    def api_ready(self):
        return self.holder() is not None and self._answers("get", "--raw", "/readyz")

    def ready(self):
        """The API server answers and the controller manager is at work: it has made the
        namespace `default`'s ServiceAccount."""
        return self.api_ready() and self._answers("get", "serviceaccount", "default", "-n", "default")

    def start(self, timeout=600):
        """Starts the cluster unless it is already running from this run directory: etcd and the
        API server, then (once the API server has made its default roles, which they need) the
        controller manager and the scheduler; with a node, containerd, the images imported into
        it, then kubelet, kube-proxy and CoreDNS, until the node is Ready and CoreDNS answers."""
        if self.ready() and (not self.node or self.node_ready()):
            return self
        self.stop()
        self.logs.mkdir(parents=True, exist_ok=True)
        self._certificates()
        self._write_kubeconfig(self.kubeconfig, "admin")
        for user in ("controller-manager", "scheduler"):
            self._write_kubeconfig(self.run_dir / f"{user}.kubeconfig", user)
        deadline = time.monotonic() + timeout
        procs = {}
        stages = [((("etcd", self.etcd_command), ("kube-apiserver", self.apiserver_command)), self.api_ready),
                  ((("kube-controller-manager", self.controller_manager_command),
                    ("kube-scheduler", self.scheduler_command)), self.ready)]
        if self.node:
            stages += [((("containerd", self.containerd_command),), self.containerd_ready),
                       ((("kubelet", self.kubelet_command), ("kube-proxy", self.kube_proxy_command),
                         ("coredns", self.coredns_command), ("traefik", self.traefik_command)),
                        self.node_ready)]
        try:
            self._make_namespaces()
            if self.node:
                self._node_files()
            for programs, ready in stages:
                if programs[0][0] == "kubelet":
                    self.import_images()
                procs.update({name: self._spawn(name, command()) for name, command in programs})
                while not ready():
                    for name, proc in procs.items():
                        if proc.poll() is not None:
                            raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.log_tail(name)}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the cluster is not ready after {timeout}s:\n" +
                                           "\n".join(self.log_tail(name, 10) for name in procs))
                    time.sleep(0.5)
            if self.node:
                self._volumes()
                self._ingress_class()
        except BaseException:
            self.stop()
            raise
        return self

    def log_tail(self, name, lines=30):
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self, timeout=30):
        """Ends every process in the cluster's network namespace, then what is left in the run's
        cgroup (the containers, in network namespaces of their own), then the holder; the
        namespaces (and the addresses and mounts in them) go with the last of them. Removes the
        run's cgroup."""
        state = self._state()
        if state is None:
            return
        netns, holder = state["netns"], state["holder"]
        if netns == _netns(os.getpid()):
            raise RuntimeError("the recorded namespace is this process's own: refusing to stop")
        if _netns(holder) == netns:
            members = lambda: self._members(netns, exclude=holder)  # noqa: E731
        else:  # the holder is gone: only what this run started may be left
            members = lambda: [pid for pid in state["processes"].values() if _netns(pid) == netns]  # noqa: E731
        cgroup = state.get("cgroup")
        containers = lambda: _cgroup_pids(cgroup) if cgroup else []  # noqa: E731
        # The containers first (a kubelet at work would restart some: they are ended again last).
        for group in (containers, members, containers):
            for sig, wait in ((signal.SIGTERM, timeout if group is members else 0), (signal.SIGKILL, 10)):
                for pid in group():
                    _kill(pid, sig)
                deadline = time.monotonic() + wait
                while group() and time.monotonic() < deadline:
                    time.sleep(0.2)
        if _netns(holder) == netns:
            _kill(holder, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _netns(holder) == netns and time.monotonic() < deadline:
                time.sleep(0.05)
        for child in self._children:
            child.poll()
        self._children.clear()
        left = members() + containers() + ([holder] if _netns(holder) == netns else [])
        if left:
            raise RuntimeError(f"processes left in the cluster's namespace or cgroup: {left}")
        if cgroup:
            _remove_cgroup(cgroup)
            # The images unpacked and the containers' layers (a few GB; nothing is mounted on them
            # now that the cluster's mount namespace is gone).
            shutil.rmtree(self.run_dir / "containerd", ignore_errors=True)
        self.state_file.unlink()

    @staticmethod
    def _members(netns, exclude=None):
        """The processes whose network namespace is the cluster's."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != exclude and _netns(entry) == netns:
                pids.append(int(entry))
        return pids

    def describe(self):
        """How to reach the running cluster, for `make cluster`."""
        here = os.path.relpath(Path(__file__), Path.cwd())
        run = f"{sys.executable} {here} exec --"
        lines = [f"Kubernetes {kubernetes_version()} is running in its own network namespace (held by pid "
                 f"{self.holder()}): etcd, kube-apiserver, kube-controller-manager, kube-scheduler"]
        if self.node:
            values = self.helm_values()
            lines += [f"and the node {NODE_NAME} (containerd, kubelet, kube-proxy, CoreDNS, Traefik; the images of",
                      "cluster/images/build.sh imported). Install the charts as docs/kubernetes.md tells, with them:",
                      f"    {run} kubectl apply -f k8s/namespace.yaml"]
            for release in ("redis", "kafka", "chatroom"):
                lines.append(f"    {run} helm upgrade --install {release} helm/{release} -n chatroom --wait "
                             f"--timeout 15m {' '.join(values[release])}")
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


def _cgroup_dirs(name):
    """The run's cgroup in each hierarchy of the machine that has it (cgroup v1: one per
    controller)."""
    return [path for path in CGROUP_FS.glob(f"*/{name}") if path.is_dir()]


def _make_cgroup(name):
    """The cgroup kubelet puts the pods under (its cgroupRoot), in every hierarchy; a new cpuset
    cgroup starts with no CPUs and no memory nodes, so it gets its parent's."""
    for hierarchy in CGROUP_FS.iterdir():
        if not (hierarchy / "cgroup.procs").exists():
            continue
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        for setting in ("cpuset.cpus", "cpuset.mems"):
            if (path / setting).exists() and not (path / setting).read_text().strip():
                (path / setting).write_text((hierarchy / setting).read_text())


def _cgroup_tree(name):
    """Every cgroup of the run's tree in every hierarchy, deepest first. One that goes away
    while the tree is read (a container's, as kubelet removes it) is left out: os.walk
    skips a directory it can no longer list."""
    dirs = [Path(path) for top in _cgroup_dirs(name) for path, _, _ in os.walk(top)]
    return sorted(dirs, key=lambda p: len(p.parts), reverse=True)


def _cgroup_pids(name):
    pids = set()
    for path in _cgroup_tree(name):
        try:
            pids.update(int(pid) for pid in (path / "cgroup.procs").read_text().split())
        except OSError:
            pass
    return sorted(pids)


def _remove_cgroup(name):
    """Removes the run's cgroup tree, deepest first (empty cgroups only: rmdir)."""
    for path in _cgroup_tree(name):
        try:
            path.rmdir()
        except FileNotFoundError:
            pass


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def main(argv):
    command = argv[1] if len(argv) > 1 else "start"
    cluster = Cluster(node="--no-node" not in argv[2:3])
    if command == "start":
        build()
        print("==> starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler; containerd "
              "(importing the images), kubelet, kube-proxy, CoreDNS, Traefik", flush=True)
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
