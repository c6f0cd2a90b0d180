"""Probes of the charts' NetworkPolicies on the one-node cluster, where kube-router's firewall
enforces them (cluster/system_pods.py): TCP connections tried from inside pods (`kubectl exec`,
Python's socket, a short timeout, all targets of a probe at once), and name lookups through the
cluster's DNS. A probe pod runs the ingest image (it has Python) with a command that only waits,
in a namespace of its own, under Pod Security `restricted`."""

import json
import time

# A connection a policy allows is made within milliseconds on this node; one it forbids is
# dropped or rejected (kube-router rejects), so this bounds only what a drop would cost.
CONNECT_TIMEOUT_S = 2

# Run in the pod: connects to each [host, port] of argv[1] and looks up each name of argv[2],
# all at once; prints {"connect": {"host:port": "open" or the error}, "resolve": {name: [ips] or
# the error}}.
PROBE = f"""
import json, socket, sys, threading
targets, names = json.loads(sys.argv[1]), json.loads(sys.argv[2])
seen = {{"connect": {{}}, "resolve": {{}}}}
def connect(host, port):
    try:
        socket.create_connection((host, port), timeout={CONNECT_TIMEOUT_S}).close()
        seen["connect"][f"{{host}}:{{port}}"] = "open"
    except OSError as error:
        seen["connect"][f"{{host}}:{{port}}"] = repr(error)
def resolve(name):
    try:
        seen["resolve"][name] = sorted({{a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_INET)}})
    except OSError as error:
        seen["resolve"][name] = repr(error)
threads = [threading.Thread(target=connect, args=t) for t in targets]
threads += [threading.Thread(target=resolve, args=(n,)) for n in names]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(seen))
"""

RESTRICTED = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def probe(cluster, namespace, pod, targets, names=(), container=None):
    """From ``pod`` in ``namespace``: what each connection to ``targets`` ([(host, port)]) and
    each lookup of ``names`` gave (see PROBE)."""
    chosen = ["-c", container] if container else []
    result = cluster.kubectl("exec", "-n", namespace, pod, *chosen, "--", "python", "-c", PROBE,
                             json.dumps([list(t) for t in targets]), json.dumps(list(names)), timeout=60)
    return json.loads(result.stdout)


def start_probe_pods(cluster, image, namespaces, timeout_s=180):
    """A pod named ``probe`` in each of ``namespaces`` (made, labelled Pod Security `restricted`),
    running ``image`` and only waiting; returns once each is Ready."""
    items = []
    for namespace in namespaces:
        items.append({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": namespace, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
        items.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": namespace},
                      "spec": {"automountServiceAccountToken": False, "terminationGracePeriodSeconds": 0,
                               "containers": [{"name": "probe", "image": image, "imagePullPolicy": "Never",
                                               "command": ["python", "-c", "import time; time.sleep(86400)"],
                                               "securityContext": RESTRICTED,
                                               "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                                                             "limits": {"memory": "64Mi"}}}]}})
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                            "items": items}))
    deadline = time.monotonic() + timeout_s
    for namespace in namespaces:
        # The namespace's ServiceAccount `default` comes a moment after it: the pod waits for it.
        while cluster.kubectl("wait", "-n", namespace, "pod/probe", "--for=condition=Ready", "--timeout=10s",
                              check=False).returncode:
            assert time.monotonic() < deadline, cluster.kubectl("describe", "pod", "probe", "-n", namespace,
                                                                check=False).stdout


def delete_namespaces(cluster, namespaces):
    cluster.kubectl("delete", "namespace", *namespaces, "--wait=false", "--ignore-not-found", check=False)


def pod_address(pod, port_name=None):
    """(the pod's IP, the port named ``port_name``, or its first container's first port)."""
    ports = pod["spec"]["containers"][0]["ports"]
    port = next(p for p in ports if port_name is None or p.get("name") == port_name)["containerPort"]
    return pod["status"]["podIP"], port


def kube_router_chains_beside_kube_proxys(cluster):
    """The chains of the filter table (iptables-save of this machine's backend, inside the
    cluster's network namespace): kube-proxy's and kube-router's are both there when they use the
    same backend."""
    saved = cluster.run("iptables-save", "-t", "filter").stdout
    return sorted({line.split()[0][1:] for line in saved.splitlines() if line.startswith(":KUBE-")})
