"""A Kubernetes control plane on this machine: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler (no node yet), run inside a network and mount namespace of their own, so that
nothing of the cluster listens on the machine's network and everything it mounts goes away
with it.

    python cluster/cluster.py start           # what `make cluster` does (builds first: cluster/build.sh)
    python cluster/cluster.py stop            # what `make cluster-down` does
    python cluster/cluster.py exec -- CMD...  # CMD inside the cluster's network, KUBECONFIG set
                                              # (e.g. `exec -- kubectl get ns`, `exec -- helm list -A`)

The namespaces are held by one process (`sleep`, made by `unshare`); every program of the cluster
is started inside them with `nsenter`. Inside, the API server is at https://127.0.0.1:6443 and the
node's address is NODE_IP on a bridge of its own. Stopping ends every process in that network
namespace, then the holder: the namespaces, their addresses and mounts cease with it.
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
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
API_PORT = 6443
ETCD_CLIENT = "http://127.0.0.1:2379"
ETCD_PEER = "http://127.0.0.1:2380"


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
    def __init__(self, run_dir=RUN_DIR, bin_dir=BIN, die_with_me=False):
        """die_with_me: every process of the cluster is killed when this process ends."""
        self.run_dir = Path(run_dir)
        self.bin = Path(bin_dir)
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
        path = f"{self.bin}{os.pathsep}{ROOT / '.cache' / 'go' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
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
        self._save({"holder": holder.pid, "netns": _netns(holder.pid), "processes": {}})
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "add", "cluster0", "type", "bridge"],
                    ["ip", "addr", "add", NODE_CIDR, "dev", "cluster0"],
                    ["ip", "link", "set", "cluster0", "up"]):
            subprocess.run(self.inside(*cmd), check=True)

    def _spawn(self, name, args):
        """Starts a program of the cluster inside the namespaces, logging to logs/<name>.log."""
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(self.inside(*args), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
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
        system:masters), the controller manager and the scheduler (the users Kubernetes' default
        RBAC roles name); the service-account signing key. EC keys: quick to make."""
        pki = self.pki
        pki.mkdir(parents=True, exist_ok=True)
        if (pki / "scheduler.crt").exists():
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
                ("scheduler", "/CN=system:kube-scheduler", "extendedKeyUsage=clientAuth\n")):
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

    def start(self, timeout=180):
        """Starts the control plane unless it is already running from this run directory: etcd
        and the API server, then (once the API server has made its default roles, which they
        need) the controller manager and the scheduler."""
        if self.ready():
            return self
        self.stop()
        self.logs.mkdir(parents=True, exist_ok=True)
        self._certificates()
        self._write_kubeconfig(self.kubeconfig, "admin")
        for user in ("controller-manager", "scheduler"):
            self._write_kubeconfig(self.run_dir / f"{user}.kubeconfig", user)
        deadline = time.monotonic() + timeout
        procs = {}
        try:
            self._make_namespaces()
            for stage, ready in (((("etcd", self.etcd_command()),
                                   ("kube-apiserver", self.apiserver_command())), self.api_ready),
                                 ((("kube-controller-manager", self.controller_manager_command()),
                                   ("kube-scheduler", self.scheduler_command())), self.ready)):
                procs.update({name: self._spawn(name, command) for name, command in stage})
                while not ready():
                    for name, proc in procs.items():
                        if proc.poll() is not None:
                            raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.log_tail(name)}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the control plane is not ready after {timeout}s:\n" +
                                           "\n".join(self.log_tail(name, 10) for name in procs))
                    time.sleep(0.5)
        except BaseException:
            self.stop()
            raise
        return self

    def log_tail(self, name, lines=30):
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self, timeout=30):
        """Ends every process in the cluster's network namespace, then the holder; the
        namespaces (and the addresses and mounts in them) go with the last of them."""
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
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            for pid in members():
                _kill(pid, sig)
            deadline = time.monotonic() + wait
            while members() and time.monotonic() < deadline:
                time.sleep(0.2)
        if _netns(holder) == netns:
            _kill(holder, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _netns(holder) == netns and time.monotonic() < deadline:
                time.sleep(0.05)
        for child in self._children:
            child.poll()
        self._children.clear()
        left = members() + ([holder] if _netns(holder) == netns else [])
        if left:
            raise RuntimeError(f"processes left in the cluster's namespace: {left}")
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
        return "\n".join([
            f"Kubernetes {kubernetes_version()} control plane (etcd, kube-apiserver, kube-controller-manager,",
            "kube-scheduler; no node) is running in its own",
            f"network namespace (held by pid {self.holder()}); logs in {self.logs}.",
            "Run kubectl or helm inside it:",
            f"    {sys.executable} {here} exec -- kubectl get namespaces",
            f"    {sys.executable} {here} exec -- helm list -A",
            "or a shell there (KUBECONFIG set):",
            f"    {sys.executable} {here} exec -- bash",
            "Stop it: make cluster-down",
        ])


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def main(argv):
    command = argv[1] if len(argv) > 1 else "start"
    cluster = Cluster()
    if command == "start":
        build()
        print("==> starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler", flush=True)
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
